"""The calls oVirt engine's external network provider client makes, over plain HTTP
against a real ``ovirt-ipam engine`` process with token auth.

The client logs in with Keystone v2.0 (``POST /v2.0/tokens``), then lists
networks and ports, creates a port per vNIC (device_owner "oVirt", device_id the
vNIC id, the vNIC's MAC), updates binding:host_id and mac_address when the VM
moves or the vNIC changes, and deletes the port. Its Java model may send null for
any attribute it did not set.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from ipam.lab.harness import EngineProcess

TOKEN = "s3cret"
PASSWORD = "pw"
TENANT = "ovirt-tenant"
# extra_conf is appended inside [api], right after bind_port (harness.write_engine_conf).
TOKEN_CONF = f"auth_strategy = token\nauth_token = {TOKEN}\nauth_password = {PASSWORD}\n"


def login_body(username: str = "admin", password: str = PASSWORD) -> dict:
    return {
        "auth": {
            "passwordCredentials": {"username": username, "password": password},
            "tenantName": TENANT,
        }
    }


def stored(port: dict) -> dict:
    """A port without what only some answers carry: the readiness report (create and
    update answers) and the lease (GET of one port, filtered lists)."""
    return {k: v for k, v in port.items() if not k.startswith("dhcp_")}


def assert_neutron_error(
    resp: httpx.Response, status: int, type_: str | None = None, keystone: bool = False
) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    if keystone:  # token endpoints answer in Keystone's form too, for keystoneauth
        assert body.pop("error") == {
            "code": 401,
            "title": "Unauthorized",
            "message": body["NeutronError"]["message"],
        }
    assert set(body) == {"NeutronError"}
    err = body["NeutronError"]
    assert set(err) == {"type", "message", "detail"}
    assert isinstance(err["message"], str) and err["message"]
    if type_ is not None:
        assert err["type"] == type_
    return err


@pytest.fixture(scope="module")
def shared_engine(module_engine_factory: Callable[..., EngineProcess]) -> EngineProcess:
    """One engine for the module: each test gets it emptied (engine)."""
    return module_engine_factory(TOKEN_CONF)


@pytest.fixture
def engine(shared_engine: EngineProcess) -> EngineProcess:
    """The module's engine with an empty store, as a fresh one has: what an earlier test
    made is deleted through the API first (ports, then networks with their subnets)."""
    headers = {"X-Auth-Token": TOKEN}
    with httpx.Client(base_url=shared_engine.url, headers=headers, timeout=10) as api:
        for kind in ("ports", "networks"):
            for item in api.get(f"/v2.0/{kind}").json()[kind]:
                resp = api.delete(f"/v2.0/{kind}/{item['id']}")
                assert resp.status_code == 204, resp.text
        for kind in ("networks", "subnets", "ports"):
            assert api.get(f"/v2.0/{kind}").json()[kind] == [], kind
    return shared_engine


@pytest.fixture
def anon(engine: EngineProcess) -> Iterator[httpx.Client]:
    """A client that has not logged in."""
    with httpx.Client(base_url=engine.url, timeout=10) as client:
        yield client


@pytest.fixture
def token(anon: httpx.Client) -> str:
    resp = anon.post("/v2.0/tokens", json=login_body())
    assert resp.status_code == 200, resp.text
    return resp.json()["access"]["token"]["id"]


@pytest.fixture
def client(engine: EngineProcess, token: str) -> Iterator[httpx.Client]:
    """The provider client after login: every request carries X-Auth-Token."""
    headers = {"X-Auth-Token": token, "Accept": "application/json"}
    with httpx.Client(base_url=engine.url, headers=headers, timeout=10) as c:
        yield c


@pytest.fixture
def network(client: httpx.Client) -> dict:
    """A provider network with one subnet, as an administrator sets it up."""
    net = client.post("/v2.0/networks", json={"network": {"name": "ovirtmgmt2"}})
    assert net.status_code == 201, net.text
    net_id = net.json()["network"]["id"]
    sub = client.post(
        "/v2.0/subnets",
        json={"subnet": {"network_id": net_id, "cidr": "192.168.50.0/24", "ip_version": 4}},
    )
    assert sub.status_code == 201, sub.text
    return client.get(f"/v2.0/networks/{net_id}").json()["network"]


def ovirt_port(network_id: str, **changes: object) -> dict:
    """A port body as oVirt engine sends it for a vNIC."""
    port = {
        "name": "nic1",
        "network_id": network_id,
        "admin_state_up": True,
        "mac_address": "56:6f:1a:2b:00:01",
        "device_owner": "oVirt",
        "device_id": str(uuid.uuid4()),
        "binding:host_id": "host-a.example.com",
        "tenant_id": TENANT,
        "security_groups": [],
        "port_security_enabled": False,
    }
    port.update(changes)
    return {"port": port}


# identity


def test_v2_token_login_returns_the_token_and_a_network_catalog(engine, anon):
    resp = anon.post("/v2.0/tokens", json=login_body())
    assert resp.status_code == 200
    access = resp.json()["access"]
    assert access["token"]["id"] == TOKEN
    assert access["token"]["tenant"]["name"] == TENANT
    assert access["token"]["expires"] > access["token"]["issued_at"]
    [service] = access["serviceCatalog"]
    assert service["type"] == "network"
    assert service["endpoints"][0]["publicURL"].rstrip("/") == engine.url


def test_v2_token_login_with_bad_credentials_is_401(anon):
    bad = {
        "wrong password": login_body(password="wrong"),
        "wrong user": login_body(username="root"),
        "empty password": login_body(password=""),
        "no credentials": {"auth": {"tenantName": TENANT}},
    }
    for case, body in bad.items():
        resp = anon.post("/v2.0/tokens", json=body)
        err = assert_neutron_error(resp, 401, "NotAuthenticated", keystone=True)
        assert TOKEN not in resp.text, case
        assert "authentication" in err["message"], case
    # The right credentials still work afterwards.
    assert anon.post("/v2.0/tokens", json=login_body()).status_code == 200


def test_requests_without_a_valid_token_get_401_neutron_error(anon, client, network):
    port = client.post("/v2.0/ports", json=ovirt_port(network["id"])).json()["port"]
    calls = [
        ("GET", "/v2.0/networks", None),
        ("GET", f"/v2.0/networks/{network['id']}", None),
        ("GET", "/v2.0/ports", None),
        ("GET", f"/v2.0/ports/{port['id']}", None),
        ("POST", "/v2.0/ports", ovirt_port(network["id"], mac_address="56:6f:1a:2b:00:02")),
        ("PUT", f"/v2.0/ports/{port['id']}", {"port": {"binding:host_id": "host-b"}}),
        ("DELETE", f"/v2.0/ports/{port['id']}", None),
        ("GET", "/v2.0/subnets", None),
        ("GET", "/v2.0/extensions", None),
        ("GET", "/v2.0/network-ip-availabilities", None),
    ]
    for headers in ({}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""}):
        for method, path, body in calls:
            resp = anon.request(method, path, json=body, headers=headers)
            err = assert_neutron_error(resp, 401, "NotAuthenticated")
            assert "X-Auth-Token" in err["message"], (method, path)
    # Nothing changed.
    assert stored(client.get(f"/v2.0/ports/{port['id']}").json()["port"]) == stored(port)
    assert len(client.get("/v2.0/ports").json()["ports"]) == 1


def test_version_discovery_needs_no_token(engine, anon):
    resp = anon.get("/")
    assert resp.status_code == 200
    [version] = resp.json()["versions"]
    assert version["id"] == "v2.0"
    assert version["links"][0]["href"].startswith(engine.url)


# the provider client's flow


def test_list_networks_as_the_provider_client_does(client, network):
    resp = client.get("/v2.0/networks")
    assert resp.status_code == 200
    [net] = resp.json()["networks"]
    assert net["id"] == network["id"]
    assert net["name"] == "ovirtmgmt2"
    assert net["vdsm_name"] == "ovirtmgmt2"
    assert net["mtu"] == 1500
    assert len(net["subnets"]) == 1
    # Attributes the provider's network import reads.
    for key in ("provider:network_type", "provider:physical_network", "tenant_id", "status"):
        assert key in net
    sub = client.get(f"/v2.0/subnets/{net['subnets'][0]}").json()["subnet"]
    assert sub["cidr"] == "192.168.50.0/24"


def test_vnic_port_lifecycle(client, network):
    nic_id = str(uuid.uuid4())
    body = ovirt_port(network["id"], device_id=nic_id)
    resp = client.post("/v2.0/ports", json=body)
    assert resp.status_code == 201, resp.text
    port = resp.json()["port"]
    assert port["network_id"] == network["id"]
    assert port["mac_address"] == "56:6f:1a:2b:00:01"
    assert (port["device_owner"], port["device_id"]) == ("oVirt", nic_id)
    assert port["binding:host_id"] == "host-a.example.com"
    assert port["admin_state_up"] is True
    assert port["tenant_id"] == port["project_id"] == TENANT
    # Accepted and kept, not acted on.
    assert port["security_groups"] == []
    assert port["port_security_enabled"] is False
    [fixed] = port["fixed_ips"]
    assert fixed["subnet_id"] == network["subnets"][0]
    assert ipaddress.IPv4Address(fixed["ip_address"]) in ipaddress.IPv4Network("192.168.50.0/24")
    assert fixed["ip_address"] != "192.168.50.1"  # the default gateway

    # deallocate() lists every port and picks its own by device_owner and device_id.
    other = client.post(
        "/v2.0/ports",
        json={"port": {"network_id": network["id"], "device_owner": "compute:nova"}},
    ).json()["port"]
    listed = client.get("/v2.0/ports")
    assert listed.status_code == 200
    ports = listed.json()["ports"]
    assert {p["id"] for p in ports} == {port["id"], other["id"]}
    mine = [p for p in ports if p["device_owner"] == "oVirt" and p["device_id"] == nic_id]
    assert [p["id"] for p in mine] == [port["id"]]
    assert mine[0] == stored(port) | {"updated_at": mine[0]["updated_at"]}
    filtered = client.get("/v2.0/ports", params={"device_owner": "oVirt", "device_id": nic_id})
    assert [p["id"] for p in filtered.json()["ports"]] == [port["id"]]

    # The VM migrates: the engine rebinds the port to the new host.
    moved = client.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": "host-b"}})
    assert moved.status_code == 200, moved.text
    moved_port = moved.json()["port"]
    assert moved_port["binding:host_id"] == "host-b"
    assert moved_port["mac_address"] == port["mac_address"]
    assert moved_port["fixed_ips"] == port["fixed_ips"]
    assert moved_port["revision_number"] == port["revision_number"] + 1

    # The vNIC's MAC changes.
    remac = client.put(
        f"/v2.0/ports/{port['id']}", json={"port": {"mac_address": "56:6F:1A:2B:00:FF"}}
    )
    assert remac.status_code == 200, remac.text
    assert remac.json()["port"]["mac_address"] == "56:6f:1a:2b:00:ff"
    assert remac.json()["port"]["binding:host_id"] == "host-b"
    assert remac.json()["port"]["fixed_ips"] == port["fixed_ips"]
    shown = client.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert shown["mac_address"] == "56:6f:1a:2b:00:ff"
    assert shown["security_groups"] == [] and shown["port_security_enabled"] is False
    by_mac = client.get("/v2.0/ports", params={"mac_address": "56:6f:1a:2b:00:ff"})
    assert [p["id"] for p in by_mac.json()["ports"]] == [port["id"]]

    # Unplug: delete; the port is gone, the other one stays.
    deleted = client.delete(f"/v2.0/ports/{port['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_neutron_error(client.get(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")
    assert_neutron_error(client.delete(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")
    assert [p["id"] for p in client.get("/v2.0/ports").json()["ports"]] == [other["id"]]


def test_same_mac_twice_on_a_network_is_a_conflict(client, network):
    first = client.post("/v2.0/ports", json=ovirt_port(network["id"]))
    assert first.status_code == 201
    again = client.post("/v2.0/ports", json=ovirt_port(network["id"]))
    err = assert_neutron_error(again, 409, "MacAddressInUse")
    assert "56:6f:1a:2b:00:01" in err["message"]
    assert len(client.get("/v2.0/ports").json()["ports"]) == 1


def test_port_on_unknown_network_is_404(client):
    missing = str(uuid.uuid4())
    err = assert_neutron_error(
        client.post("/v2.0/ports", json=ovirt_port(missing)), 404, "NetworkNotFound"
    )
    assert missing in err["message"]


def test_unknown_attribute_is_400_neutron_error(client, network):
    body = ovirt_port(network["id"], no_such_attribute=1)
    err = assert_neutron_error(client.post("/v2.0/ports", json=body), 400)
    assert "no_such_attribute" in err["message"]
    assert client.get("/v2.0/ports").json()["ports"] == []


# nulls from the Java client


def test_null_optional_attributes_are_tolerated_on_create(client, network):
    body = ovirt_port(
        network["id"],
        name=None,
        description=None,
        tenant_id=None,
        project_id=None,
        fixed_ips=None,
        security_groups=None,
        port_security_enabled=None,
        admin_state_up=None,
        mac_address=None,
        **{"binding:host_id": None, "binding:profile": None, "binding:vnic_type": None},
    )
    resp = client.post("/v2.0/ports", json=body)
    assert resp.status_code == 201, resp.text
    port = resp.json()["port"]
    assert port["name"] == ""
    assert port["binding:host_id"] == ""
    assert port["admin_state_up"] is True
    assert port["security_groups"] == []
    assert port["port_security_enabled"] is True
    assert port["binding:vnic_type"] == "normal"
    assert port["mac_address"].startswith("fa:16:3e:")  # generated
    assert len(port["fixed_ips"]) == 1  # null fixed_ips means "pick one"
    assert port["tenant_id"] == network["tenant_id"]


def test_null_attributes_on_update_leave_values_unchanged(client, network):
    port = client.post("/v2.0/ports", json=ovirt_port(network["id"])).json()["port"]
    nulls = {
        "name": None,
        "device_id": None,
        "device_owner": None,
        "mac_address": None,
        "fixed_ips": None,
        "admin_state_up": None,
        "security_groups": None,
        "port_security_enabled": None,
        "tenant_id": None,
        "binding:host_id": "host-c",
    }
    resp = client.put(f"/v2.0/ports/{port['id']}", json={"port": nulls})
    assert resp.status_code == 200, resp.text
    updated = resp.json()["port"]
    assert updated["binding:host_id"] == "host-c"
    for key in ("name", "device_id", "device_owner", "mac_address", "fixed_ips"):
        assert updated[key] == port[key], key
    assert updated["admin_state_up"] is True
    assert updated["security_groups"] == []
    assert updated["port_security_enabled"] is False
    assert updated["tenant_id"] == TENANT


def test_null_attributes_are_tolerated_for_networks_and_subnets(client):
    net = client.post(
        "/v2.0/networks",
        json={
            "network": {
                "name": "nullnet",
                "admin_state_up": None,
                "tenant_id": None,
                "shared": None,
                "router:external": None,
                "provider:network_type": None,
                "provider:physical_network": None,
                "provider:segmentation_id": None,
                "port_security_enabled": None,
                "mtu": None,
            }
        },
    )
    assert net.status_code == 201, net.text
    n = net.json()["network"]
    assert (n["name"], n["admin_state_up"], n["mtu"], n["shared"]) == ("nullnet", True, 1500, False)

    sub = client.post(
        "/v2.0/subnets",
        json={
            "subnet": {
                "network_id": n["id"],
                "cidr": "10.9.0.0/24",
                "ip_version": 4,
                "name": None,
                "allocation_pools": None,
                "dns_nameservers": None,
                "host_routes": None,
                "enable_dhcp": None,
                "tenant_id": None,
            }
        },
    )
    assert sub.status_code == 201, sub.text
    s = sub.json()["subnet"]
    assert s["allocation_pools"] == [{"start": "10.9.0.2", "end": "10.9.0.254"}]
    assert (s["dns_nameservers"], s["host_routes"], s["enable_dhcp"]) == ([], [], True)
    assert s["gateway_ip"] == "10.9.0.1"
