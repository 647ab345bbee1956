"""Names, DNS attributes and extra_dhcp_opts through the REST API (issue 16, engine
side): validation, uniqueness per network, Neutron's merge of options, dns_assignment,
revision and status, and what the DHCP agents are told. The API in-process on a
store on SQLite and on PostgreSQL; the bus part against a real engine process."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ipam.api.app import create_app
from ipam.bus import contracts as C
from ipam.db.schema import ports as ports_table
from ipam.dhcp.notifier import network_info, port_state
from ipam.exceptions import InvalidInput
from ipam.lab.harness import EngineProcess
from ipam.polling import wait_for
from ipam.store import Store
from ipam.store.dns import DnsDefaults
from tests.test_api_bad_input import error_of, refused, snapshot
from tests.test_bus_server import Api, FakeAgent

OPTS = "extra_dhcp_opts"


@pytest.fixture
def api(store: Store) -> TestClient:
    """The API on the store of each backend (the conftest's ``api`` is SQLite only)."""
    return TestClient(create_app(store))


def post(api: TestClient, kind: str, attrs: dict[str, Any]) -> dict[str, Any]:
    resp = api.post(f"/v2.0/{kind}s", json={kind: attrs})
    assert resp.status_code == 201, resp.text
    return resp.json()[kind]


def put(api: TestClient, kind: str, id_: str, attrs: dict[str, Any]) -> dict[str, Any]:
    resp = api.put(f"/v2.0/{kind}s/{id_}", json={kind: attrs})
    assert resp.status_code == 200, resp.text
    return resp.json()[kind]


def network(api: TestClient, name: str, cidr: str, **attrs: Any) -> str:
    net = post(api, "network", {"name": name, **attrs})
    post(api, "subnet", {"network_id": net["id"], "cidr": cidr})
    return net["id"]


def ips(port: dict[str, Any]) -> list[str]:
    return [f["ip_address"] for f in port["fixed_ips"]]


# -- names and domains -----------------------------------------------------------------


def test_dns_name_is_lowered_and_assigned_per_fixed_ip(api: TestClient, store: Store) -> None:
    net = network(api, "red", "10.5.0.0/24")
    post(api, "subnet", {"network_id": net, "cidr": "fd05::/64", "ip_version": 6})
    port = post(api, "port", {"network_id": net, "dns_name": "VM-1"})
    assert port["dns_name"] == "vm-1"
    assert len(port["fixed_ips"]) == 2
    assert port["dns_assignment"] == [
        {"hostname": "vm-1", "ip_address": ip, "fqdn": "vm-1.ovirtlocal."} for ip in ips(port)
    ]
    plain = post(api, "port", {"network_id": net})
    assert (plain["dns_name"], plain["dns_assignment"], plain[OPTS]) == ("", [], [])
    with store.db.read() as conn:
        stored = conn.execute(sa.select(ports_table.c.dns_name, ports_table.c.extra)).all()
    assert sorted((n or "", "dns_name" in e) for n, e in stored) == [("", False), ("vm-1", False)]

    # The network's domain (canonical: lower case) reaches every view of its ports.
    shown = put(api, "network", net, {"dns_domain": "Lab.Example.ORG."})
    assert (shown["dns_domain"], shown["revision_number"]) == ("lab.example.org.", 2)
    fqdn = "vm-1.lab.example.org."
    got = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert {a["fqdn"] for a in got["dns_assignment"]} == {fqdn}
    listed = {p["id"]: p for p in api.get("/v2.0/ports").json()["ports"]}  # the kept list
    assert {a["fqdn"] for a in listed[port["id"]]["dns_assignment"]} == {fqdn}
    filtered = api.get("/v2.0/ports", params={"network_id": net}).json()["ports"]
    assert {a["fqdn"] for p in filtered for a in p["dns_assignment"]} == {fqdn}
    assert (
        api.get("/v2.0/ports", params={"dns_name": "vm-1"}).json()["ports"][0]["id"] == port["id"]
    )

    # "" or null: back to the configured domain; a name "" or null: none.
    assert put(api, "network", net, {"dns_domain": ""})["dns_domain"] == ""
    again = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert again["dns_assignment"][0]["fqdn"] == "vm-1.ovirtlocal."
    put(api, "network", net, {"dns_domain": "a.example."})
    assert put(api, "network", net, {"dns_domain": None})["dns_domain"] == ""
    cleared = put(api, "port", port["id"], {"dns_name": ""})
    assert (cleared["dns_name"], cleared["dns_assignment"]) == ("", [])
    put(api, "port", port["id"], {"dns_name": "vm-2"})
    assert put(api, "port", port["id"], {"dns_name": None})["dns_name"] == ""


def test_configured_domain_and_dns_service_default(store: Store) -> None:
    """[dns] domain "" and service_default on: the fqdn is the bare name with a dot,
    networks get the DNS service unless they set dns_service, null goes back."""
    configured = Store(store.db, dns=DnsDefaults(domain="", service=True))
    api = TestClient(create_app(configured))
    net = network(api, "blue", "10.6.0.0/24")
    assert api.get(f"/v2.0/networks/{net}").json()["network"]["dns_service"] is True
    port = post(api, "port", {"network_id": net, "dns_name": "db"})
    assert port["dns_assignment"][0]["fqdn"] == "db."
    assert network_info(configured.get_network(net), configured.dns).dns_domain is None
    off = put(api, "network", net, {"dns_service": "false"})  # converted as Neutron does
    assert (off["dns_service"], off["revision_number"]) == (False, 2)
    assert put(api, "network", net, {"dns_service": None})["dns_service"] is True
    # The same rows through a store with the defaults: "ovirtlocal.", no DNS service.
    plain = TestClient(create_app(store))
    assert plain.get(f"/v2.0/networks/{net}").json()["network"]["dns_service"] is False
    shown = plain.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert shown["dns_assignment"][0]["fqdn"] == "db.ovirtlocal."


def test_network_dns_attributes_on_create_and_their_defaults(api: TestClient) -> None:
    plain = post(api, "network", {"name": "plain"})
    assert (plain["dns_domain"], plain["dns_service"]) == ("", False)
    net = post(api, "network", {"name": "n", "dns_domain": "Example.Org.", "dns_service": "yes"})
    assert (net["dns_domain"], net["dns_service"], net["revision_number"]) == (
        "example.org.",
        True,
        1,
    )
    listed = {n["id"]: n for n in api.get("/v2.0/networks").json()["networks"]}
    assert (listed[net["id"]]["dns_domain"], listed[net["id"]]["dns_service"]) == (
        "example.org.",
        True,
    )
    message = refused(
        api,
        "PUT",
        f"/v2.0/networks/{net['id']}",
        400,
        "InvalidInput",
        body={"network": {"dns_domain": "example.org"}},
        mentions=("dns_domain", "'example.org'", "ending with '.'"),
    )
    assert "\n" not in message


def test_duplicate_name_in_a_network_is_refused(api: TestClient) -> None:
    net1 = network(api, "net1", "10.7.0.0/24")
    net2 = network(api, "net2", "10.8.0.0/24")
    web = post(api, "port", {"network_id": net1, "dns_name": "web"})
    other = post(api, "port", {"network_id": net1, "dns_name": "db"})
    for body in ({"network_id": net1, "dns_name": "WEB"}, {"network_id": net1, "dns_name": "web"}):
        refused(
            api,
            "POST",
            "/v2.0/ports",
            400,
            "InvalidInput",
            body={"port": body},
            mentions=("'web'", net1, web["id"]),
        )
    refused(
        api,
        "PUT",
        f"/v2.0/ports/{other['id']}",
        400,
        "InvalidInput",
        body={"port": {"dns_name": "web", "name": "renamed"}},
        mentions=("'web'", net1),
    )
    # The same name in another network, and the port's own name again, are fine.
    assert post(api, "port", {"network_id": net2, "dns_name": "web"})["dns_name"] == "web"
    assert put(api, "port", web["id"], {"dns_name": "Web"})["dns_name"] == "web"
    # A name freed (cleared, or its port deleted) can be taken.
    put(api, "port", web["id"], {"dns_name": ""})
    assert put(api, "port", other["id"], {"dns_name": "web"})["dns_name"] == "web"
    assert api.delete(f"/v2.0/ports/{other['id']}").status_code == 204
    assert post(api, "port", {"network_id": net1, "dns_name": "web"})["dns_name"] == "web"


@pytest.mark.postgresql
def test_concurrent_creates_of_one_name_on_postgresql(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Engines racing to create ports of one name: the unique index catches what the
    check could not see (a create not yet committed), the loser is retried and refused."""
    from tests.conftest import make_store

    caplog.set_level(logging.DEBUG, logger="ipam.db.engine")
    stores = [make_store(pg_url) for _ in range(4)]
    net = stores[0].create_network({"name": "race"})["id"]
    stores[0].create_subnet({"network_id": net, "cidr": "10.9.0.0/24"})
    # The index itself refuses a second port of a name in a network.
    first = stores[0].create_port({"network_id": net, "dns_name": "probe"})
    second = stores[0].create_port({"network_id": net})
    with pytest.raises(sa.exc.IntegrityError), stores[0].db.engine.begin() as conn:
        conn.execute(
            sa.update(ports_table).where(ports_table.c.id == second["id"]).values(dns_name="probe")
        )
    assert stores[0].get_port(first["id"])["dns_name"] == "probe"
    for round_ in range(5):
        barrier = threading.Barrier(8)
        outcomes: list[str] = []
        name = f"vm-{round_}"
        threads = [
            threading.Thread(target=_create, args=(stores[i % 4], net, name, barrier, outcomes))
            for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == ["created"] + ["refused"] * 7
    names = [p["dns_name"] for p in stores[0].list_ports({"network_id": [net]})]
    assert sorted(names) == ["", "probe", "vm-0", "vm-1", "vm-2", "vm-3", "vm-4"]
    assert any("lost a race" in r.getMessage() for r in caplog.records)  # the index caught it
    for store in stores:
        store.db.dispose()


def _create(
    store: Store, net: str, name: str, barrier: threading.Barrier, outcomes: list[str]
) -> None:
    barrier.wait()
    try:
        store.create_port({"network_id": net, "dns_name": name})
        outcomes.append("created")
    except InvalidInput as exc:
        assert name in exc.message and net in exc.message
        outcomes.append("refused")


# -- extra_dhcp_opts ---------------------------------------------------------------------


def test_extra_dhcp_opts_are_canonical_and_merge_as_neutron(api: TestClient) -> None:
    net = network(api, "pxe", "10.10.0.0/24")
    port = post(
        api,
        "port",
        {
            "network_id": net,
            OPTS: [
                {"opt_name": "67", "opt_value": "pxelinux.0"},
                {"opt_name": "tftp-server", "opt_value": "TFTP.Example", "ip_version": "4"},
                {"opt_name": "ntp-server", "opt_value": "fd00::123", "ip_version": 6},
                {"opt_name": "mtu", "opt_value": None},  # nothing to remove: ignored
            ],
        },
    )
    assert port[OPTS] == [
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
        {"opt_name": "tftp-server", "opt_value": "tftp.example", "ip_version": 4},
        {"opt_name": "ntp-server", "opt_value": "fd00::123", "ip_version": 6},
    ]
    merged = put(
        api,
        "port",
        port["id"],
        {
            OPTS: [
                {"opt_name": "bootfile-name", "opt_value": "ipxe.efi"},  # replaced in place
                {"opt_name": "66", "opt_value": None},  # removed (by its alias)
                {"opt_name": "tag:ipxe,67", "opt_value": "http://boot.example/ipxe.cfg"},
                {"opt_name": "server-ip-address", "opt_value": "10.10.0.5"},
                {
                    "opt_name": "bootfile-name",
                    "opt_value": "tftp://[fd00::5]/b.efi",
                    "ip_version": 6,
                },
            ]
        },
    )
    assert merged[OPTS] == [
        {"opt_name": "bootfile-name", "opt_value": "ipxe.efi", "ip_version": 4},
        {"opt_name": "ntp-server", "opt_value": "fd00::123", "ip_version": 6},
        {
            "opt_name": "ipxe-bootfile-name",
            "opt_value": "http://boot.example/ipxe.cfg",
            "ip_version": 4,
        },
        {"opt_name": "server-ip-address", "opt_value": "10.10.0.5", "ip_version": 4},
        {"opt_name": "bootfile-name", "opt_value": "tftp://[fd00::5]/b.efi", "ip_version": 6},
    ]
    # [] and an update without the attribute change nothing; v4 and v6 are apart.
    assert put(api, "port", port["id"], {OPTS: []})[OPTS] == merged[OPTS]
    assert put(api, "port", port["id"], {"name": "x"})[OPTS] == merged[OPTS]
    left = put(
        api,
        "port",
        port["id"],
        {OPTS: [{"opt_name": n, "opt_value": None, "ip_version": v} for n, v in _keys(merged)]},
    )
    assert left[OPTS] == []
    assert api.get(f"/v2.0/ports/{port['id']}").json()["port"][OPTS] == []
    # A refused update leaves the options as they were.
    put(api, "port", port["id"], {OPTS: [{"opt_name": "mtu", "opt_value": "9000"}]})
    before = snapshot(api)
    resp = api.put(
        f"/v2.0/ports/{port['id']}",
        json={"port": {OPTS: [{"opt_name": "mtu", "opt_value": None}, {"opt_name": "x"}]}},
    )
    assert "'x'" in error_of(resp, 400, "InvalidInput")
    assert snapshot(api) == before


def _keys(port: dict[str, Any]) -> list[tuple[str, int]]:
    return [(o["opt_name"], o["ip_version"]) for o in port[OPTS]]


# -- revision, status and readiness ---------------------------------------------------------


def test_a_served_change_bumps_the_revision_and_waits_for_an_agent(store: Store) -> None:
    waited: list[int] = []

    class Counting:
        host_down_time = 6.0

        def wait(self, port: dict) -> dict:
            waited.append(port["revision_number"])
            return port

    api = TestClient(create_app(store, readiness=Counting()))  # type: ignore[arg-type]
    net = network(api, "st", "10.11.0.0/24")
    port = post(api, "port", {"network_id": net, "dns_name": "a"})
    assert waited == [1]

    def acked() -> dict[str, Any]:
        now = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
        store.record_acks("h1", net, {port["id"]: now["revision_number"]})
        active = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
        assert active["status"] == "ACTIVE"
        return active

    acked()
    for attrs in (
        {"dns_name": "b"},
        {OPTS: [{"opt_name": "bootfile-name", "opt_value": "a.0"}]},
        {OPTS: [{"opt_name": "bootfile-name", "opt_value": "b.0"}]},
        {OPTS: [{"opt_name": "bootfile-name", "opt_value": None}]},
        {"dns_name": ""},
    ):
        before = acked()
        after = put(api, "port", port["id"], attrs)
        assert after["revision_number"] == before["revision_number"] + 1, attrs
        assert after["status"] == "DOWN", attrs
        assert waited[-1] == after["revision_number"], attrs
    # What changes nothing served keeps the port ACTIVE and does not wait.
    before = acked()
    count = len(waited)
    for attrs in (
        {"dns_name": ""},
        {OPTS: []},
        {OPTS: [{"opt_name": "mtu", "opt_value": None}]},
        {"name": "only-a-name"},
    ):
        after = put(api, "port", port["id"], attrs)
        assert after["status"] == "ACTIVE", attrs
    assert len(waited) == count
    assert after["revision_number"] == before["revision_number"] + 4


def test_the_agents_are_told_names_options_and_domains(store: Store) -> None:
    """PortState and NetworkInfo as the notifier and the sync build them, through the
    wire format (encode, decode) the agents read."""
    api = TestClient(create_app(store))
    net = network(api, "told", "10.12.0.0/24", dns_domain="Lab.Example.", dns_service=True)
    named = post(
        api,
        "port",
        {
            "network_id": net,
            "dns_name": "VM1",
            OPTS: [{"opt_name": "67", "opt_value": "pxelinux.0"}],
        },
    )
    plain = post(api, "port", {"network_id": net})
    state = store.network_state(net)
    info = network_info(state["network"], store.dns)
    by_id = {p["id"]: port_state(p) for p in state["ports"]}
    reply = C.SyncReply(
        networks=[
            C.NetworkState(network=info, subnets=[], ports=list(by_id.values()), dhcp_port=None)
        ],
        missing=[],
    )
    raw = C.encode(C.make("sync.reply", reply, "engine"))
    assert b'"dns_name"' in raw and raw.count(b'"dns_name"') == 1  # only the named port
    _, body = C.decode(raw)
    told = body.networks[0]
    assert (told.network.dns_domain, told.network.dns_service) == ("lab.example.", True)
    ports = {p.id: p for p in told.ports}
    assert ports[named["id"]].dns_name == "vm1"
    assert ports[named["id"]].extra_dhcp_opts == [
        C.DhcpOpt(opt_name="bootfile-name", opt_value="pxelinux.0", ip_version=4)
    ]
    assert (ports[plain["id"]].dns_name, ports[plain["id"]].extra_dhcp_opts) == (None, [])
    # A port event carries the same; a network with neither set leaves both out.
    event = C.PortEvent(port=port_state(store.get_port(named["id"])))
    assert C.decode(C.encode(C.make("port.update", event, "engine")))[1].port.dns_name == "vm1"
    bare = network(api, "bare", "10.13.0.0/24")
    default = network_info(store.get_network(bare), store.dns)
    assert (default.dns_domain, default.dns_service) == ("ovirtlocal.", False)
    assert "dns_service" not in default.model_dump()


# -- against a real engine: configuration, sync and events ------------------------------------


def test_engine_sends_names_and_domains_in_syncs_and_events(
    engine_factory: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    engine = engine_factory("[dns]\ndomain = Lab.Example.\nservice_default = true\n")
    agent = FakeAgent(f"filesystem://{tmp_path}/state/bus", f"host-{uuid.uuid4().hex[:8]}")
    try:
        api = Api(engine.url)
        net, _ = api.network("named", "10.14.0.0/24")
        assert net["dns_service"] is True and net["dns_domain"] == ""
        vm = api.post("port", {"network_id": net["id"], "dns_name": "vm1"})
        assert vm["dns_assignment"][0]["fqdn"] == "vm1.lab.example."
        (state,) = agent.sync([net["id"]]).networks
        assert (state.network.dns_domain, state.network.dns_service) == ("lab.example.", True)
        assert {p.id: p.dns_name for p in state.ports}[vm["id"]] == "vm1"

        resp = api.http.put(
            f"/ports/{vm['id']}",
            json={"port": {"dns_name": "vm2", OPTS: [{"opt_name": "mtu", "opt_value": "9000"}]}},
        )
        assert resp.status_code == 200, resp.text
        changed = resp.json()["port"]
        assert changed["status"] == "DOWN"
        revision = changed["revision_number"]
        event = agent.event(
            "port.update", lambda b: b.port.id == vm["id"] and b.port.revision_number == revision
        )
        assert event.port.dns_name == "vm2"
        assert [(o.opt_name, o.opt_value) for o in event.port.extra_dhcp_opts] == [("mtu", "9000")]
        agent.send(
            "port.ack",
            C.PortAck(
                host=agent.host,
                network_id=net["id"],
                ports=[C.AckedPort(id=vm["id"], revision_number=revision)],
            ),
        )
        wait_for(lambda: api.get("port", vm["id"])["status"] == "ACTIVE", 20, "ACTIVE")

        body = {"network": {"dns_domain": "b.example.", "dns_service": False}}
        resp = api.http.put(f"/networks/{net['id']}", json=body)
        assert resp.status_code == 200, resp.text
        revision = resp.json()["network"]["revision_number"]
        agent.event(
            "network.update", lambda b: b.network_id == net["id"] and b.revision_number == revision
        )
        (state,) = agent.sync([net["id"]]).networks
        assert (state.network.dns_domain, state.network.dns_service) == ("b.example.", False)
        assert api.get("port", vm["id"])["dns_assignment"][0]["fqdn"] == "vm2.b.example."
        listed = api.http.get("/ports").json()["ports"]
        assert {p["id"]: p for p in listed}[vm["id"]]["dns_assignment"][0]["fqdn"] == (
            "vm2.b.example."
        )
    finally:
        agent.close()
