"""REST behaviour in-process: filters, fields, paging, auth, limits, OpenAPI."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ipam import contracts as C
from ipam.api.app import create_app
from ipam.api.auth import StaticTokenAuth
from ipam.messaging import Bus
from ipam.notifier import Notifier, network_info
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
    assert [p["id"] for p in rest["ports"]] == made[2:] and "ports_links" not in rest


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
            info = network_info(store.network_state(net["id"])["network"])
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
