"""REST behaviour in-process: filters, fields, paging, auth, limits, OpenAPI."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ipam.api.app import create_app
from ipam.api.auth import StaticTokenAuth
from ipam.bus import contracts as C
from ipam.bus.messaging import Bus
from ipam.dhcp.notifier import Notifier, network_info
from ipam.polling import wait_for
from ipam.store import Store


def _setup(api: TestClient) -> tuple[dict, dict]:
    net = api.post("/v2.0/networks", json={"network": {"name": "net1", "tags": ["a"]}}).json()
    sub = api.post(
        "/v2.0/subnets",
        json={
            "subnet": {"network_id": net["network"]["id"], "cidr": "10.5.0.0/24", "ip_version": 4}
        },
    ).json()
    return net["network"], sub["subnet"]


def test_port_filters_and_fields(api: TestClient) -> None:
    net, _ = _setup(api)
    made = []
    for i in range(4):
        body = {
            "network_id": net["id"],
            "device_id": f"vm-{i % 2}",
            "device_owner": "oVirt" if i < 3 else "network:dhcp",
        }
        resp = api.post("/v2.0/ports", json={"port": body})
        assert resp.status_code == 201
        made.append(resp.json()["port"])
    ids = lambda resp: [p["id"] for p in resp.json()["ports"]]  # noqa: E731
    assert ids(api.get("/v2.0/ports", params={"device_id": "vm-1"})) == [
        made[1]["id"],
        made[3]["id"],
    ]
    assert ids(api.get("/v2.0/ports?device_owner=oVirt&device_id=vm-0")) == [
        made[0]["id"],
        made[2]["id"],
    ]
    assert ids(api.get(f"/v2.0/ports?id={made[0]['id']}&id={made[3]['id']}")) == [
        made[0]["id"],
        made[3]["id"],
    ]
    mac = made[2]["mac_address"].upper()
    assert ids(api.get("/v2.0/ports", params={"mac_address": mac})) == [made[2]["id"]]
    ip = made[1]["fixed_ips"][0]["ip_address"]
    assert ids(api.get("/v2.0/ports", params={"fixed_ips": f"ip_address={ip}"})) == [made[1]["id"]]
    assert ids(api.get("/v2.0/ports", params={"network_id": net["id"]})) == [p["id"] for p in made]
    assert api.get("/v2.0/ports", params={"network_id": "other"}).json()["ports"] == []
    only = api.get("/v2.0/ports", params={"fields": ["id", "mac_address"]}).json()["ports"]
    assert all(set(p) == {"id", "mac_address"} for p in only) and len(only) == 4
    shown = api.get(f"/v2.0/ports/{made[0]['id']}?fields=status").json()["port"]
    assert shown == {"status": "DOWN"}
    assert api.get("/v2.0/networks?tags=a").json()["networks"][0]["id"] == net["id"]
    assert api.get("/v2.0/networks?admin_state_up=false").json()["networks"] == []


def test_paging_with_limit_and_marker(api: TestClient) -> None:
    net, _ = _setup(api)
    made = [
        api.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]["id"]
        for _ in range(5)
    ]
    first = api.get("/v2.0/ports?limit=2").json()
    assert [p["id"] for p in first["ports"]] == made[:2]
    nxt = first["ports_links"][0]
    assert nxt["rel"] == "next" and f"marker={made[1]}" in nxt["href"]
    rest = api.get(f"/v2.0/ports?limit=10&marker={made[1]}").json()
    assert [p["id"] for p in rest["ports"]] == made[2:]
    # The last page links back (Neutron's "previous", with page_reverse), not on.
    [back] = rest["ports_links"]
    assert back["rel"] == "previous" and f"marker={made[2]}" in back["href"]
    assert "page_reverse=True" in back["href"]
    assert api.get("/v2.0/ports?limit=10&marker=no-such-port").json() == {"ports": []}


def _names(resp) -> list[str]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text
    return [n["name"] for n in resp.json()["networks"]]


@pytest.fixture
def five_networks(api: TestClient) -> list[dict]:
    """Created in this order: names c, a, e, b, d; MTUs 1500, 1400, 1500, 1400, 9000."""
    out = []
    for name, mtu in [("c", 1500), ("a", 1400), ("e", 1500), ("b", 1400), ("d", 9000)]:
        resp = api.post("/v2.0/networks", json={"network": {"name": name, "mtu": mtu}})
        assert resp.status_code == 201, resp.text
        out.append(resp.json()["network"])
    return out


def test_sort_keys_and_directions_as_neutron_pairs_them(api: TestClient, five_networks) -> None:  # type: ignore[no-untyped-def]
    assert _names(api.get("/v2.0/networks")) == ["c", "a", "e", "b", "d"]  # creation order
    assert _names(api.get("/v2.0/networks?sort_key=name")) == ["a", "b", "c", "d", "e"]
    assert _names(api.get("/v2.0/networks?sort_key=name&sort_dir=desc")) == list("edcba")
    # Repeated: pairs in order; ties of the first key by the second.
    both = "/v2.0/networks?sort_key=mtu&sort_dir=desc&sort_key=name&sort_dir=asc"
    assert _names(api.get(both)) == ["d", "c", "e", "a", "b"]
    # Directions pair with keys in order; a key left without one is ascending.
    fewer = "/v2.0/networks?sort_key=mtu&sort_key=name&sort_dir=desc"
    assert _names(api.get(fewer)) == ["d", "c", "e", "a", "b"]
    assert _names(api.get("/v2.0/networks?sort_key=mtu&sort_key=name")) == list("abced")
    # Filters, fields and sorting together.
    resp = api.get("/v2.0/networks?mtu=1500&sort_key=name&sort_dir=desc&fields=name")
    assert resp.json() == {"networks": [{"name": "e"}, {"name": "c"}]}


def test_sorted_pages_follow_marker_and_page_reverse(api: TestClient, five_networks) -> None:  # type: ignore[no-untyped-def]
    by_name = {n["name"]: n["id"] for n in five_networks}
    url = "/v2.0/networks?sort_key=name&limit=2"
    first = api.get(url).json()
    assert [n["name"] for n in first["networks"]] == ["a", "b"]
    [nxt] = first["networks_links"]
    assert nxt["rel"] == "next" and f"marker={by_name['b']}" in nxt["href"]
    assert "sort_key=name" in nxt["href"] and nxt["href"].startswith("http://testserver/v2.0/")
    second = api.get(nxt["href"].removeprefix("http://testserver")).json()
    assert [n["name"] for n in second["networks"]] == ["c", "d"]
    assert {link["rel"] for link in second["networks_links"]} == {"next", "previous"}
    last = api.get(f"{url}&marker={by_name['d']}").json()
    assert [n["name"] for n in last["networks"]] == ["e"]
    # page_reverse: the page before the marker, still in the list's order.
    back = api.get(f"{url}&marker={by_name['d']}&page_reverse=True").json()
    assert [n["name"] for n in back["networks"]] == ["b", "c"]
    start = api.get(f"{url}&page_reverse=true").json()  # no marker: the last page
    assert [n["name"] for n in start["networks"]] == ["d", "e"]
    # limit=0 is no limit, as in Neutron.
    assert _names(api.get("/v2.0/networks?sort_key=name&limit=0")) == list("abcde")


def test_an_unfiltered_list_is_never_paged(api: TestClient) -> None:
    """oVirt engine lists without parameters and deletes the networks missing from the
    list: there is no default page size."""
    for i in range(120):
        body = {"network": {"name": f"n{i}", "ha_count": 0}}
        assert api.post("/v2.0/networks", json=body).status_code == 201
    answer = api.get("/v2.0/networks").json()
    assert list(answer) == ["networks"] and len(answer["networks"]) == 120


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("sort_key=nosuch", "nosuch"),
        ("sort_key=name&sort_key=bogus", "bogus"),
        ("sort_key=subnets", "subnets"),  # a list: not a sort key
        ("sort_key=name&sort_dir=up", "up"),
        ("sort_dir=asc", "sort_dirs"),  # a direction without its key
        ("sort_key=name&sort_dir=asc&sort_dir=desc", "sort_dirs"),
        ("limit=-1", "limit"),
        ("limit=two", "limit"),
    ],
)
def test_bad_sorting_or_paging_is_refused(
    api: TestClient, five_networks, query: str, mentions: str
) -> None:
    resp = api.get(f"/v2.0/networks?{query}")
    assert resp.status_code == 400, resp.text
    err = resp.json()["NeutronError"]
    assert err["type"] in ("HTTPBadRequest", "InvalidInput") and mentions in err["message"]


class _CountingReadiness:
    """Stands in for ipam.dhcp.readiness.Readiness: records the ports it is asked to wait for."""

    host_down_time = 6.0

    def __init__(self) -> None:
        self.waited: list[str] = []

    def wait(self, port: dict) -> dict:
        self.waited.append(port["mac_address"])
        return port


def test_only_a_real_change_of_mac_or_ips_waits_for_dhcp(sqlite_store: Store) -> None:
    """oVirt engine's migration PUT repeats the MAC with the new binding:host_id; it
    must not wait for the DHCP servers (nothing they serve changed)."""
    readiness = _CountingReadiness()
    api = TestClient(create_app(sqlite_store, readiness=readiness))  # type: ignore[arg-type]
    net, _ = _setup(api)
    body = {"port": {"network_id": net["id"], "mac_address": "56:6f:00:00:00:0a"}}
    port = api.post("/v2.0/ports", json=body).json()["port"]
    assert readiness.waited == ["56:6f:00:00:00:0a"]  # a create waits
    same = {"port": {"mac_address": "56:6F:00:00:00:0A", "binding:host_id": "host-b"}}
    moved = api.put(f"/v2.0/ports/{port['id']}", json=same)
    assert moved.status_code == 200 and moved.json()["port"]["binding:host_id"] == "host-b"
    again = {"port": {"fixed_ips": port["fixed_ips"], "security_groups": None}}
    assert api.put(f"/v2.0/ports/{port['id']}", json=again).status_code == 200
    assert readiness.waited == ["56:6f:00:00:00:0a"]
    new = {"port": {"mac_address": "56:6f:00:00:00:0b", "binding:host_id": "host-c"}}
    assert api.put(f"/v2.0/ports/{port['id']}", json=new).status_code == 200
    assert readiness.waited == ["56:6f:00:00:00:0a", "56:6f:00:00:00:0b"]


def test_update_bumps_revision_and_keeps_passive_attributes(api: TestClient) -> None:
    net, _ = _setup(api)
    port = api.post(
        "/v2.0/ports",
        json={
            "port": {
                "network_id": net["id"],
                "security_groups": [],
                "port_security_enabled": False,
                "description": "vm nic",
                "tenant_id": "t1",
            }
        },
    ).json()["port"]
    assert (port["port_security_enabled"], port["project_id"], port["revision_number"]) == (
        False,
        "t1",
        1,
    )
    moved = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": "h2"}}).json()
    assert moved["port"]["binding:host_id"] == "h2"
    assert moved["port"]["revision_number"] == 2 and moved["port"]["description"] == "vm nic"
    assert api.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert api.get(f"/v2.0/ports/{port['id']}").status_code == 404


def test_subnet_without_gateway_and_with_pools(api: TestClient) -> None:
    net, _ = _setup(api)
    sub = api.post(
        "/v2.0/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "10.6.0.0/29", "gateway_ip": None}},
    ).json()["subnet"]
    assert sub["gateway_ip"] is None
    assert sub["allocation_pools"] == [{"start": "10.6.0.1", "end": "10.6.0.6"}]
    network = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert network["subnets"][-1] == sub["id"] and len(network["subnets"]) == 2


def test_version_discovery_extensions_and_openapi(api: TestClient) -> None:
    versions = api.get("/").json()["versions"]
    assert versions[0]["id"] == "v2.0" and versions[0]["links"][0]["href"].endswith("/v2.0/")
    resources = {r["collection"] for r in api.get("/v2.0").json()["resources"]}
    assert {"networks", "subnets", "ports"} <= resources
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"binding", "network-ip-availability", "ovirt-dhcp"} <= aliases
    assert api.get("/v2.0/extensions/ovirt-dhcp").json()["extension"]["alias"] == "ovirt-dhcp"
    spec = api.get("/openapi.json").json()
    assert {"/v2.0/ports", "/v2.0/ports/{item_id}", "/v2.0/tokens"} <= set(spec["paths"])
    assert "binding:host_id" in spec["components"]["schemas"]["PortAttrs"]["properties"]


@pytest.fixture
def token_api(sqlite_store: Store) -> TestClient:
    return TestClient(create_app(sqlite_store, StaticTokenAuth("tok", "admin", "pw")))


def test_token_auth(token_api: TestClient) -> None:
    denied = token_api.get("/v2.0/networks")
    assert denied.status_code == 401 and denied.json()["NeutronError"]["type"] == "NotAuthenticated"
    assert token_api.get("/v2.0/networks", headers={"X-Auth-Token": "nope"}).status_code == 401
    assert token_api.get("/").status_code == 200  # discovery needs no token
    bad = token_api.post(
        "/v2.0/tokens",
        json={"auth": {"passwordCredentials": {"username": "admin", "password": "wrong"}}},
    )
    assert bad.status_code == 401
    good = token_api.post(
        "/v2.0/tokens",
        json={
            "auth": {
                "passwordCredentials": {"username": "admin", "password": "pw"},
                "tenantName": "ovirt",
            }
        },
    ).json()["access"]
    assert good["token"]["id"] == "tok"
    assert good["serviceCatalog"][0]["type"] == "network"
    ok = token_api.get("/v2.0/networks", headers={"X-Auth-Token": good["token"]["id"]})
    assert ok.status_code == 200
    v3 = token_api.post(
        "/v3/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "admin", "domain": {"name": "Default"}, "password": "pw"}
                    },
                }
            }
        },
    )
    assert v3.status_code == 201 and v3.headers["X-Subject-Token"] == "tok"


def test_oversized_body_is_refused_before_parsing(api: TestClient) -> None:
    big = b'{"network": {"name": "' + b"x" * (1024 * 1024 + 10) + b'"}}'
    resp = api.post("/v2.0/networks", content=big)
    assert resp.status_code == 413
    assert resp.json()["NeutronError"]["type"] == "HTTPRequestEntityTooLarge"
    assert api.get("/v2.0/networks").json()["networks"] == []


def test_json_is_read_whatever_the_content_type(api: TestClient) -> None:
    resp = api.post(
        "/v2.0/networks",
        content=b'{"network": {"name": "n"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 201 and resp.json()["network"]["vdsm_name"] == "n"


def test_network_dhcp_lease_time_create_show_update(api: TestClient) -> None:
    plain = api.post("/v2.0/networks", json={"network": {"name": "plain"}}).json()["network"]
    assert plain["dhcp_lease_time"] is None  # the DHCP agent's default
    resp = api.post("/v2.0/networks", json={"network": {"name": "leased", "dhcp_lease_time": 600}})
    assert resp.status_code == 201, resp.text
    net = resp.json()["network"]
    assert (net["dhcp_lease_time"], net["revision_number"]) == (600, 1)
    url = f"/v2.0/networks/{net['id']}"
    assert api.get(url).json()["network"]["dhcp_lease_time"] == 600
    listed = {n["name"]: n["dhcp_lease_time"] for n in api.get("/v2.0/networks").json()["networks"]}
    assert listed == {"plain": None, "leased": 600}
    only = api.get("/v2.0/networks?dhcp_lease_time=600&fields=id&fields=dhcp_lease_time").json()
    assert only["networks"] == [{"id": net["id"], "dhcp_lease_time": 600}]

    def put(attrs: dict) -> dict:
        resp = api.put(url, json={"network": attrs})
        assert resp.status_code == 200, resp.text
        return resp.json()["network"]

    infinite = put({"dhcp_lease_time": -1})
    assert (infinite["dhcp_lease_time"], infinite["revision_number"]) == (-1, 2)
    renamed = put({"name": "leased2"})  # absent: unchanged
    assert (renamed["dhcp_lease_time"], renamed["revision_number"]) == (-1, 3)
    back = put({"dhcp_lease_time": None})  # null: back to the agent's default
    assert (back["dhcp_lease_time"], back["revision_number"]) == (None, 4)
    assert api.get(url).json()["network"]["dhcp_lease_time"] is None
    assert put({"dhcp_lease_time": 2**31 - 1})["dhcp_lease_time"] == 2**31 - 1

    spec = api.get("/openapi.json").json()
    prop = spec["components"]["schemas"]["NetworkAttrs"]["properties"]["dhcp_lease_time"]
    assert {"type": "integer", "minimum": 120, "maximum": 2**31 - 1} in prop["anyOf"]
    assert {"type": "integer", "enum": [-1]} in prop["anyOf"]
    ext = api.get("/v2.0/extensions/ovirt-dhcp").json()["extension"]
    assert "dhcp_lease_time" in ext["description"]


def test_dhcp_lease_time_change_is_published_and_synced(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """A lease time update bumps the revision, publishes network.update to the agents
    serving the network, and the state they then sync carries the new lease time."""
    bus = Bus(f"filesystem://{tmp_path}/bus")
    store = Store(sqlite_store.db, notifier=Notifier(bus, sqlite_store.db))
    api = TestClient(create_app(store))
    net = api.post("/v2.0/networks", json={"network": {"name": "red"}}).json()["network"]
    store.subscribe_agent("h1", [net["id"]])
    got: list[tuple[str, object]] = []
    stop = threading.Event()
    consumer = threading.Thread(
        target=bus.consume,
        args=(C.agent_queue("h1"), lambda e, b: got.append((e.type, b)), stop),
        daemon=True,
    )
    consumer.start()
    try:
        for seconds, revision in ((3600, 2), (-1, 3), (None, 4)):
            resp = api.put(
                f"/v2.0/networks/{net['id']}", json={"network": {"dhcp_lease_time": seconds}}
            )
            assert resp.json()["network"]["revision_number"] == revision
            event = wait_for(
                lambda r=revision: next(
                    (b for t, b in got if t == "network.update" and b.revision_number == r), None
                ),
                20,
                f"network.update revision {revision}",
            )
            assert event.network_id == net["id"]
            info = network_info(store.network_state(net["id"])["network"], store.dns)
            assert (info.dhcp_lease_time, info.revision_number) == (seconds, revision)
            reply = C.SyncReply(
                networks=[C.NetworkState(network=info, subnets=[], ports=[], dhcp_port=None)],
                missing=[],
            )
            _, body = C.decode(C.encode(C.make("sync.reply", reply, "engine")))
            assert body.networks[0].network.dhcp_lease_time == seconds
    finally:
        stop.set()
        consumer.join(5)
        bus.close()
