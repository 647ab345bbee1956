"""oVirt engine's external network provider client, replayed against a real
``ovirt-ipam engine`` process: its calls in its order, with its exact bodies, and
every answer checked as its Java client binds it.

The client is ``BaseNetworkProviderProxy`` (ovirt-engine) on openstack-java-sdk 3.2.9
(``quantum-model``, ``keystone-model``, ``resteasy-connector``):

- the base URL is the provider URL the administrator typed plus ``/v2.0``, glued
  verbatim (a URL typed with a trailing slash gives ``//v2.0/...``), and no request
  has query parameters;
- the token comes from ``ExternalNetworkTokenProvider`` (no tenant: the Keystone v2.0
  body posted to auth URL + ``/tokens``, also when the auth URL ends in ``/v3``),
  ``KeystoneTokenProvider`` (a tenant and a v2.0 auth URL: the v2.0 body with
  ``tenantName``) or ``KeystoneV3TokenProvider`` (a tenant and a ``/v3`` auth URL:
  the v3 body to ``/auth/tokens``, the token in ``X-Subject-Token``);
- bodies are Jackson's with ``NON_NULL`` and the root name wrapped (``PortForUpdate``
  sends ``security_groups: null`` on purpose);
- an answer is success only as 200, 201, 202 or 204; a single object is unwrapped
  from its root name (exactly one key); a list is ``{"networks": [...]}``; known
  attributes are bound by Java type and one wrong value fails the whole answer,
  unknown ones are ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from ipam.lab.harness import EngineProcess, start_engine

TOKEN = "s3cret"
PASSWORD = "pw"
TOKEN_CONF = f"auth_strategy = token\nauth_token = {TOKEN}\nauth_password = {PASSWORD}\n"
SUCCESS = {200, 201, 202, 204}

# -- the Java model, as Jackson binds it -------------------------------------------------
# Types: "String", "Integer", "Boolean", "Calendar", "IpVersion", "Object",
# ("List", T), ("Map", T) and dicts (a class: field -> type). "String~" is a String
# field that our answers fill with a JSON boolean, which Jackson takes as its text.

STRING, INTEGER, BOOLEAN = "String", "Integer", "Boolean"
COERCED_STRING = "String~"


def List(of: Any) -> tuple:  # a Java type, named as in Java
    return ("List", of)


def Map(of: Any) -> tuple:
    return ("Map", of)


NETWORK = {  # com.woorea.openstack.quantum.model.Network
    "status": STRING,
    "subnets": List(STRING),
    "name": STRING,
    "admin_state_up": BOOLEAN,
    "tenant_id": STRING,
    "provider:physical_network": STRING,
    "provider:network_type": STRING,
    "provider:segmentation_id": INTEGER,
    "router:external": COERCED_STRING,
    "id": STRING,
    "shared": COERCED_STRING,
    "mtu": INTEGER,
    "port_security_enabled": BOOLEAN,
}
SUBNET = {  # quantum-model Subnet
    "name": STRING,
    "enable_dhcp": BOOLEAN,
    "network_id": STRING,
    "tenant_id": STRING,
    "dns_nameservers": List(STRING),
    "allocation_pools": List({"start": STRING, "end": STRING}),
    "host_routes": List(STRING),  # not Neutron's objects: the reason for /ovirt
    "ip_version": "IpVersion",
    "gateway_ip": STRING,
    "cidr": STRING,
    "id": STRING,
}
PORT = {  # quantum-model Port, its Binding unwrapped
    "admin_state_up": BOOLEAN,
    "device_id": STRING,
    "device_owner": STRING,
    "fixed_ips": List({"ip_address": STRING, "subnet_id": STRING}),
    "id": STRING,
    "mac_address": STRING,
    "name": STRING,
    "network_id": STRING,
    "status": STRING,
    "tenant_id": STRING,
    "security_groups": List(STRING),
    "binding:host_id": STRING,
    "binding:vif_type": STRING,
    "binding:vnic_type": STRING,
    "binding:vif_details": Map(STRING),
    "binding:profile": Map(STRING),
}
LINK = {"rel": STRING, "href": STRING, "type": STRING}
ACCESS = {  # keystone-model Access
    "token": {
        "id": STRING,
        "issued_at": "Calendar",
        "expires": "Calendar",
        "tenant": {"id": STRING, "name": STRING, "description": STRING, "enabled": BOOLEAN},
    },
    "serviceCatalog": List(
        {
            "type": STRING,
            "name": STRING,
            "endpoints": List(
                {"region": STRING, "publicURL": STRING, "internalURL": STRING, "adminURL": STRING}
            ),
            "endpoints_links": List(LINK),
        }
    ),
    "user": {
        "id": STRING,
        "name": STRING,
        "username": STRING,
        "roles": List({"id": STRING, "name": STRING}),
        "roles_links": List(LINK),
    },
    "metadata": Map("Object"),
}


class BindError(AssertionError):
    """Jackson would fail the whole answer here."""


def bind(value: Any, jtype: Any, where: str = "$") -> None:
    """Check value binds to jtype as the connector's ObjectMapper binds it (null binds
    to any field: no field here is primitive)."""
    if value is None or jtype == "Object":
        return
    if isinstance(jtype, dict):
        if not isinstance(value, dict):
            raise BindError(f"{where}: {value!r} is no object")
        for key, sub in jtype.items():  # unknown attributes are ignored
            if key in value:
                bind(value[key], sub, f"{where}.{key}")
        return
    if isinstance(jtype, tuple):
        kind, of = jtype
        if kind == "List":
            if not isinstance(value, list):
                raise BindError(f"{where}: {value!r} is no list")
            for n, item in enumerate(value):
                bind(item, of, f"{where}[{n}]")
        else:
            if not isinstance(value, dict):
                raise BindError(f"{where}: {value!r} is no map")
            for key, item in value.items():
                bind(item, of, f"{where}.{key}")
        return
    ok = {
        STRING: isinstance(value, str),
        COERCED_STRING: isinstance(value, str | bool),
        INTEGER: type(value) is int and -(2**31) <= value < 2**31,
        BOOLEAN: isinstance(value, bool),
        "IpVersion": value in (4, 6) and type(value) is int,
        "Calendar": isinstance(value, str) and _iso(value),
    }[jtype]
    if not ok:
        raise BindError(f"{where}: {value!r} does not bind to a Java {jtype}")


def _iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def unwrap(answer: dict, root: str, jtype: dict) -> dict:
    """A single object: WRAPPED_MAPPER's UNWRAP_ROOT_VALUE needs exactly one key."""
    assert isinstance(answer, dict) and list(answer) == [root], answer
    bind(answer[root], jtype, root)
    return answer[root]


def listed(answer: dict, collection: str, jtype: dict) -> list[dict]:
    """Networks/Subnets/Ports: the collection's key holds the list (others ignored)."""
    assert isinstance(answer.get(collection), list), answer
    bind(answer[collection], List(jtype), collection)
    return answer[collection]


# -- the engine's provider client, over HTTP ------------------------------------------------


class ProviderClient:
    """BaseNetworkProviderProxy's requests: ``provider_url + "/v2.0" + path``, glued
    verbatim; the token per the provider's authentication settings."""

    def __init__(
        self,
        provider_url: str,
        auth_url: str | None,
        tenant: str | None = None,
        password: str = PASSWORD,
    ) -> None:
        self.base = provider_url + "/v2.0"
        self.auth_url, self.tenant, self.password = auth_url, tenant, password
        self.http = httpx.Client(timeout=30)  # ExternalNetworkProviderTimeout
        self.token: str | None = None
        self.calls: list[tuple[str, str, int]] = []

    def close(self) -> None:
        self.http.close()

    # authentication (OpenStackTokenProviderFactory, ExternalNetworkTokenProvider)
    def login(self) -> str:
        assert self.auth_url is not None
        v3 = self.auth_url.endswith(("/v3", "/v3/"))
        if self.tenant and v3:  # KeystoneV3TokenProvider
            body = {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "domain": {"name": "Default"},
                                "name": "admin",
                                "password": self.password,
                            }
                        },
                    },
                    "scope": {"project": {"domain": {"name": "Default"}, "name": self.tenant}},
                }
            }
            resp = self._send("POST", self.auth_url + "/auth/tokens", body)
            token = resp.headers["X-Subject-Token"]
        else:  # ExternalNetworkTokenProvider, or KeystoneTokenProvider with a tenant
            auth: dict[str, Any] = {
                "passwordCredentials": {"username": "admin", "password": self.password}
            }
            if self.tenant:
                auth["tenantName"] = self.tenant
            resp = self._send("POST", self.auth_url + "/tokens", {"auth": auth})
            access = unwrap(resp.json(), "access", ACCESS)
            token = access["token"]["id"]
        self.token = token
        return token

    def _send(self, method: str, url: str, body: Any = None) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["X-Auth-Token"] = self.token
        resp = self.http.request(method, url, json=body, headers=headers)
        self.calls.append((method, url, resp.status_code))
        assert resp.status_code in SUCCESS, f"{method} {url}: {resp.status_code} {resp.text}"
        return resp

    def call(self, method: str, path: str, body: Any = None) -> dict:
        if self.auth_url is not None and self.token is None:
            self.login()
        resp = self._send(method, self.base + path, body)
        return resp.json() if resp.content else {}

    # BaseNetworkProviderProxy
    def test_connection(self) -> None:
        self.call("GET", "/")  # ApiRootResponse: any JSON object

    def get_all(self) -> list[dict]:
        return listed(self.call("GET", "/networks"), "networks", NETWORK)

    def get(self, net_id: str) -> dict:
        return unwrap(self.call("GET", f"/networks/{net_id}"), "network", NETWORK)

    def get_all_subnets(self, net_id: str) -> list[dict]:
        subnets = listed(self.call("GET", "/subnets"), "subnets", SUBNET)
        return [s for s in subnets if s["network_id"] == net_id]

    def add(self, body: dict) -> str:
        return unwrap(self.call("POST", "/networks", {"network": body}), "network", NETWORK)["id"]

    def add_subnet(self, net_id: str, body: dict) -> dict:
        net = self.get(net_id)  # getExternalNetwork
        subnet = {**body, "network_id": net["id"], "enable_dhcp": True}
        if net.get("tenant_id") is not None:
            subnet["tenant_id"] = net["tenant_id"]
        return unwrap(self.call("POST", "/subnets", {"subnet": subnet}), "subnet", SUBNET)

    def locate_port(self, nic_id: str) -> dict | None:
        ports = listed(self.call("GET", "/ports"), "ports", PORT)
        mine = [p for p in ports if p["device_owner"] == "oVirt" and p["device_id"] == nic_id]
        return mine[0] if mine else None

    def allocate(self, net_id: str, nic: dict, host: str, security_groups: Any = None) -> dict:
        """Create the vNIC's port, or update it (host or security groups changed).
        security_groups None: the vNIC profile has none set (the default group)."""
        port = self.locate_port(nic["id"])
        if port is None:
            net = self.get(net_id)
            body = {
                "admin_state_up": True,
                "name": nic["name"],
                "mac_address": nic["mac"],
                "network_id": net["id"],
                "device_owner": "oVirt",
                "device_id": nic["id"],
                "security_groups": security_groups,
                "binding:host_id": host,
                "tenant_id": net.get("tenant_id"),
            }
            body = {k: v for k, v in body.items() if v is not None}  # NON_NULL
            return unwrap(self.call("POST", "/ports", {"port": body}), "port", PORT)
        existing = port.get("security_groups") or []
        sg_changed = (security_groups is None and not existing) or (
            security_groups is not None and sorted(existing) != sorted(security_groups)
        )
        host_changed = port.get("binding:host_id") != host
        if not (sg_changed or host_changed):
            return port
        body = {}
        if sg_changed:  # PortForUpdate: security_groups is sent even when null
            body["security_groups"] = security_groups
        if host_changed:
            body.update({"binding:host_id": host, "mac_address": nic["mac"]})
        return unwrap(self.call("PUT", f"/ports/{port['id']}", {"port": body}), "port", PORT)

    def deallocate(self, nic_id: str) -> None:
        port = self.locate_port(nic_id)
        if port is not None:
            assert self.call("DELETE", f"/ports/{port['id']}") == {}

    def remove(self, net_id: str) -> None:
        assert self.call("DELETE", f"/networks/{net_id}") == {}

    def remove_subnet(self, subnet_id: str) -> None:
        assert self.call("DELETE", f"/subnets/{subnet_id}") == {}


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One engine (token auth, no hosts) for the module: each test uses its own names."""
    eng = start_engine(tmp_path_factory.mktemp("engine"), TOKEN_CONF)
    yield eng
    eng.stop()


@pytest.fixture
def make_client(engine: EngineProcess) -> Iterator[Callable[..., ProviderClient]]:
    made: list[ProviderClient] = []

    def make(provider: str = "", auth: str | None = "/v2.0", **kw: Any) -> ProviderClient:
        client = ProviderClient(
            engine.url + provider, None if auth is None else engine.url + auth, **kw
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def admin(engine: EngineProcess) -> Iterator[httpx.Client]:
    """An administrator's Neutron client (openstacksdk's view, /v2.0)."""
    with httpx.Client(base_url=engine.url, headers={"X-Auth-Token": TOKEN}, timeout=30) as c:
        yield c


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _mac() -> str:
    b = uuid.uuid4().bytes
    return "56:6f:" + ":".join(f"{x:02x}" for x in b[:4])


# -- the sequences ------------------------------------------------------------------------

#: (provider URL path, auth URL path, tenant): how an administrator may have set the
#: provider up, and what the engine then sends.
SETUPS = [
    pytest.param("", "/v2.0", "ovirt", id="url-v2-tenant"),
    pytest.param("/", "/v2.0/", None, id="url-slash-engine-setup-auth-v2-slash"),  # //v2.0
    pytest.param("", "/v3", None, id="auth-v3-no-tenant-v2-body"),  # POST /v3/tokens
    pytest.param("", "/v3/", "ovirt", id="auth-v3-tenant-v3-body"),
    pytest.param("/ovirt", "/ovirt/v2.0", None, id="ovirt-base"),
    pytest.param("/ovirt/", "/v2.0//", "t1", id="ovirt-base-slash"),
]


@pytest.mark.parametrize(("provider", "auth", "tenant"), SETUPS)
def test_the_engine_sequence_from_connection_to_removal(
    make_client: Callable[..., ProviderClient],
    admin: httpx.Client,
    provider: str,
    auth: str,
    tenant: str | None,
) -> None:
    ovirt = make_client(provider, auth, tenant=tenant)
    u = _uid()

    # Test connection (Administration Portal, "Test"): GET base + "/".
    ovirt.test_connection()
    assert ovirt.token == TOKEN

    # Create networks on the provider: linked to a physical oVirt network (its VDSM
    # name as provider:physical_network), and unlinked with a free-text name.
    linked_name = f"Linked {u}"
    linked = ovirt.add(
        {
            "admin_state_up": True,
            "name": linked_name,
            "provider:physical_network": f"phys{u}",
            "provider:network_type": "vlan",
            "provider:segmentation_id": 10,
            "mtu": 1400,
            "port_security_enabled": False,
        }
    )
    flat = ovirt.add(
        {
            "admin_state_up": True,
            "name": f"flat{u}",
            "provider:physical_network": f"flat{u}",
            "provider:network_type": "flat",
        }
    )
    free_name = f"VM network {u} " + "x" * 200  # unrestricted: spaces, 200+ characters
    free = ovirt.add({"admin_state_up": True, "name": free_name, "tenant_id": "oVirt"})
    net = ovirt.get(linked)
    assert (net["name"], net["mtu"], net["provider:segmentation_id"]) == (linked_name, 1400, 10)
    assert net["port_security_enabled"] is False
    # The bridges: provider:physical_network, and none for a name that is no VDSM name.
    shown = {
        i: admin.get(f"/v2.0/networks/{i}").json()["network"]["vdsm_name"]
        for i in (linked, flat, free)
    }
    assert shown == {linked: f"phys{u}", flat: f"flat{u}", free: None}

    # Subnets: the Administration Portal's blank gateway is "", DNS maybe [].
    sub = ovirt.add_subnet(
        linked,
        {
            "name": f"sub {u}",
            "cidr": "10.60.0.0/24",
            "ip_version": 4,
            "gateway_ip": "",
            "dns_nameservers": [],
        },
    )
    assert sub["gateway_ip"] is None and sub["dns_nameservers"] == []
    assert sub["tenant_id"] == ovirt.get(linked)["tenant_id"]
    sub2 = ovirt.add_subnet(
        free,
        {
            "name": "s2",
            "cidr": "10.61.0.0/24",
            "ip_version": 4,
            "gateway_ip": "10.61.0.1",
            "dns_nameservers": ["10.61.0.53"],
        },
    )
    assert sub2["gateway_ip"] == "10.61.0.1"

    # Import (auto-sync every 300 s): every network, then every subnet per network.
    imported = {n["id"]: n for n in ovirt.get_all()}
    assert {linked, flat, free} <= set(imported)
    assert imported[free]["name"] == free_name
    assert [s["id"] for s in ovirt.get_all_subnets(linked)] == [sub["id"]]
    assert [s["id"] for s in ovirt.get_all_subnets(free)] == [sub2["id"]]

    # VM start: GET /ports (all), the network, POST the port.
    nic = {"id": str(uuid.uuid4()), "name": "nic1", "mac": _mac()}
    port = ovirt.allocate(linked, nic, "host-a")
    assert (port["device_owner"], port["device_id"], port["mac_address"]) == (
        "oVirt",
        nic["id"],
        nic["mac"],
    )
    assert port["binding:host_id"] == "host-a" and port["security_groups"] == []
    assert port["fixed_ips"][0]["subnet_id"] == sub["id"]
    assert port["fixed_ips"][0]["ip_address"] == "10.60.0.1"  # no gateway: the first address
    free_nic = {"id": str(uuid.uuid4()), "name": "nic2", "mac": _mac()}
    free_port = ovirt.allocate(free, free_nic, "host-a", security_groups=["sg1"])
    assert free_port["security_groups"] == ["sg1"]
    # No bridge: answered at once, DOWN, saying why (the engine ignores the extra).
    created = admin.get(f"/v2.0/ports/{free_port['id']}").json()["port"]
    assert created["status"] == "DOWN"

    # Restart: the port exists, its security groups are empty and the profile sets
    # none: PUT {"security_groups": null} (PortForUpdate), on purpose.
    restarted = ovirt.allocate(linked, nic, "host-a")
    assert ovirt.calls[-1][0] == "PUT"
    assert restarted["security_groups"] == [] and restarted["id"] == port["id"]
    assert restarted["fixed_ips"] == port["fixed_ips"]

    # Migration: the host changed; mac_address and binding:host_id (and the null
    # security groups again).
    moved = ovirt.allocate(linked, nic, "host-b")
    assert moved["binding:host_id"] == "host-b" and moved["mac_address"] == nic["mac"]
    assert moved["fixed_ips"] == port["fixed_ips"]
    # ... and with ignoreSecurityGroupsOnUpdate: only mac_address and binding:host_id.
    only = {"port": {"mac_address": nic["mac"], "binding:host_id": "host-c"}}
    again = unwrap(ovirt.call("PUT", f"/ports/{port['id']}", only), "port", PORT)
    assert (
        again["binding:host_id"] == "host-c" and again["revision_number"] > port["revision_number"]
    )

    # Unplug: GET /ports, DELETE the port (204, no body).
    ovirt.deallocate(nic["id"])
    ovirt.deallocate(free_nic["id"])
    assert ovirt.locate_port(nic["id"]) is None

    # Removal: subnets, networks; the next import no longer lists them.
    ovirt.remove_subnet(sub2["id"])
    for net_id in (linked, flat, free):
        ovirt.remove(net_id)
    assert not {linked, flat, free} & {n["id"] for n in ovirt.get_all()}

    # Every request went where the engine sends it, and every answer was a success.
    assert all(code in SUCCESS for _, _, code in ovirt.calls)
    if provider.endswith("/"):
        assert any("//v2.0/" in url for _, url, _ in ovirt.calls)


def test_host_routes_reach_the_engine_only_on_the_ovirt_base_path(
    make_client: Callable[..., ProviderClient], admin: httpx.Client
) -> None:
    """Subnet.hostRoutes is a List<String>: Neutron's route objects on /v2.0 fail the
    whole subnet list for the Java client; /ovirt gives them as strings, and
    openstacksdk's /v2.0 keeps Neutron's objects."""
    u = _uid()
    net = admin.post("/v2.0/networks", json={"network": {"name": f"routed{u}"}}).json()
    body = {
        "subnet": {
            "network_id": net["network"]["id"],
            "cidr": "10.62.0.0/24",
            "host_routes": [
                {"destination": "192.0.2.0/24", "nexthop": "10.62.0.254"},
                {"destination": "0.0.0.0/0", "nexthop": "10.62.0.1"},
            ],
        }
    }
    created = admin.post("/v2.0/subnets", json=body)
    assert created.status_code == 201, created.text
    sub_id = created.json()["subnet"]["id"]
    try:
        ovirt = make_client("/ovirt")
        [sub] = ovirt.get_all_subnets(net["network"]["id"])
        assert sub["host_routes"] == [
            "destination=192.0.2.0/24,nexthop=10.62.0.254",
            "destination=0.0.0.0/0,nexthop=10.62.0.1",
        ]
        shown = unwrap(ovirt.call("GET", f"/subnets/{sub_id}"), "subnet", SUBNET)
        assert shown["host_routes"] == sub["host_routes"]
        # The same subnet as Neutron shows it: what the Java client cannot bind.
        neutron = make_client("")
        with pytest.raises(BindError, match="host_routes"):
            neutron.get_all_subnets(net["network"]["id"])
        assert (
            admin.get(f"/v2.0/subnets/{sub_id}").json()["subnet"]["host_routes"]
            == (body["subnet"]["host_routes"])
        )
        # A subnet created through /ovirt answers in strings too.
        made = ovirt.add_subnet(
            net["network"]["id"],
            {"name": "s", "cidr": "10.63.0.0/24", "ip_version": 4, "gateway_ip": "10.63.0.1"},
        )
        assert made["host_routes"] == []
        updated = ovirt.call(
            "PUT",
            f"/subnets/{made['id']}",
            {"subnet": {"host_routes": [{"destination": "10.64.0.0/16", "nexthop": "10.63.0.9"}]}},
        )
        assert unwrap(updated, "subnet", SUBNET)["host_routes"] == [
            "destination=10.64.0.0/16,nexthop=10.63.0.9"
        ]
    finally:
        for sub in admin.get("/v2.0/subnets").json()["subnets"]:
            if sub["network_id"] == net["network"]["id"]:
                admin.delete(f"/v2.0/subnets/{sub['id']}")
        admin.delete(f"/v2.0/networks/{net['network']['id']}")


def test_the_ovirt_base_path_has_its_own_version_discovery(engine: EngineProcess) -> None:
    for path in ("/ovirt", "/ovirt/", "/ovirt//"):
        resp = httpx.get(engine.url + path, timeout=10)
        assert resp.status_code == 200
        [version] = resp.json()["versions"]
        assert version["links"][0]["href"] == f"{engine.url}/ovirt/v2.0/"
    resp = httpx.get(engine.url + "/ovirt/v2.0/", timeout=10)
    links = {r["collection"]: r["links"][0]["href"] for r in resp.json()["resources"]}
    assert links["networks"] == f"{engine.url}/ovirt/v2.0/networks"
    resp = httpx.get(engine.url + "/", timeout=10)
    assert resp.json()["versions"][0]["links"][0]["href"] == f"{engine.url}/v2.0/"


@pytest.mark.parametrize(
    "path",
    [
        "//v2.0/networks",
        "/v2.0//networks",
        "/v2.0//networks/",
        "//v2.0//networks//",
        "/ovirt//v2.0/networks",
        "///v2.0/networks",
    ],
)
def test_empty_path_segments_are_ignored(engine: EngineProcess, path: str) -> None:
    resp = httpx.get(engine.url + path, headers={"X-Auth-Token": TOKEN}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert list(resp.json()) == ["networks"]


@pytest.mark.parametrize(
    ("auth", "tenant"),
    [
        pytest.param("/v2.0", None, id="v2-no-tenant"),
        pytest.param("/v2.0", "ovirt-tenant", id="v2-tenant"),
        pytest.param("/v2.0/", None, id="v2-engine-setup-slash"),
        pytest.param("//v2.0", "x", id="v2-double-slash"),
        pytest.param("/v3", None, id="v3-url-v2-body"),
        pytest.param("/v3/", None, id="v3-url-slash-v2-body"),
        pytest.param("/v3", "ovirt", id="v3-body"),
    ],
)
def test_token_endpoints_as_the_engine_calls_them(
    make_client: Callable[..., ProviderClient], auth: str, tenant: str | None
) -> None:
    client = make_client("", auth, tenant=tenant)
    assert client.login() == TOKEN
    assert client.get_all() is not None  # the token works
    wrong = make_client("", auth, tenant=tenant, password="wrong")
    with pytest.raises(AssertionError, match="401"):
        wrong.login()


def test_answers_are_java_readable_with_every_attribute_set(
    make_client: Callable[..., ProviderClient], admin: httpx.Client
) -> None:
    """What openstacksdk users may set still binds for the engine: binding:profile is
    a map of strings, provider:segmentation_id a Java Integer (refused otherwise)."""
    u = _uid()
    net = admin.post(
        "/v2.0/networks",
        json={
            "network": {
                "name": f"full{u}",
                "provider:segmentation_id": 2**31 - 1,
                "shared": True,
                "router:external": False,
                "tags": ["a", "b"],
            }
        },
    )
    assert net.status_code == 201, net.text
    net_id = net.json()["network"]["id"]
    admin.post("/v2.0/subnets", json={"subnet": {"network_id": net_id, "cidr": "10.65.0.0/24"}})
    port = admin.post(
        "/v2.0/ports",
        json={"port": {"network_id": net_id, "binding:profile": {"pci_slot": "0000:00:1f.0"}}},
    )
    assert port.status_code == 201, port.text
    nested = admin.post(
        "/v2.0/ports",
        json={"port": {"network_id": net_id, "binding:profile": {"caps": ["switchdev"]}}},
    )
    assert nested.status_code == 400 and "binding:profile" in nested.text
    too_big = admin.post(
        "/v2.0/networks", json={"network": {"name": "big", "provider:segmentation_id": 2**31}}
    )
    assert too_big.status_code == 400
    for base in ("", "/ovirt"):
        ovirt = make_client(base)
        ovirt.get_all()
        [mine] = [
            p
            for p in listed(ovirt.call("GET", "/ports"), "ports", PORT)
            if p["network_id"] == net_id
        ]
        assert mine["binding:profile"] == {"pci_slot": "0000:00:1f.0"}
        unwrap(ovirt.call("GET", f"/ports/{mine['id']}"), "port", PORT)
        unwrap(ovirt.call("GET", f"/networks/{net_id}"), "network", NETWORK)
    admin.delete(f"/v2.0/ports/{port.json()['port']['id']}")
    admin.delete(f"/v2.0/networks/{net_id}")


def test_a_network_without_a_bridge_says_why_its_ports_get_no_dhcp(
    make_client: Callable[..., ProviderClient], admin: httpx.Client
) -> None:
    """The port create answers at once (well within the engine's 30 s), DOWN, with the
    reason; the engine reads the port all the same."""
    ovirt = make_client("/ovirt")
    u = _uid()
    net_id = ovirt.add({"admin_state_up": True, "name": f"No bridge {u}"})
    ovirt.add_subnet(net_id, {"name": "s", "cidr": "10.66.0.0/24", "ip_version": 4})
    nic = {"id": str(uuid.uuid4()), "name": "nic1", "mac": _mac()}
    started = datetime.now()
    body = {
        "port": {
            "admin_state_up": True,
            "name": "nic1",
            "mac_address": nic["mac"],
            "network_id": net_id,
            "device_owner": "oVirt",
            "device_id": nic["id"],
            "binding:host_id": "host-a",
        }
    }
    answer = ovirt.call("POST", "/ports", body)
    assert (datetime.now() - started).total_seconds() < 5
    port = unwrap(answer, "port", PORT)
    assert port["status"] == "DOWN"
    reason = port["dhcp_status_reason"]
    assert f"Network {net_id} has no bridge (vdsm_name is null)" in reason
    assert "set its vdsm_name" in reason
    ovirt.deallocate(nic["id"])
    admin.put(f"/v2.0/networks/{net_id}", json={"network": {"vdsm_name": f"br{u}"}})
    port = unwrap(ovirt.call("POST", "/ports", body), "port", PORT)
    assert "has no bridge" not in port["dhcp_status_reason"]  # now: no live host carries it
    assert f"br{u}" in port["dhcp_status_reason"]
    ovirt.deallocate(nic["id"])
    for sub in ovirt.get_all_subnets(net_id):
        ovirt.remove_subnet(sub["id"])
    ovirt.remove(net_id)


def test_the_engines_ipv6_subnet_and_a_port_on_it(
    make_client: Callable[..., ProviderClient],
) -> None:
    """The Administration Portal's IPv6 subnet (ip_version 6, a blank gateway box, no
    modes) under the engine's /ovirt view: created and read back in the Java model's
    shape, and a vNIC's port on the network gets an address of its pools."""
    ovirt = make_client("/ovirt")
    net_id = ovirt.add({"admin_state_up": True, "name": f"v6 {_uid()}"})
    body = {
        "name": "v6",
        "dns_nameservers": ["fd00::53"],
        "ip_version": 6,
        "gateway_ip": "",
        "cidr": "fd00::/64",
    }
    sub = ovirt.add_subnet(net_id, body)
    assert (sub["ip_version"], sub["cidr"], sub["gateway_ip"]) == (6, "fd00::/64", None)
    assert [s["id"] for s in ovirt.get_all_subnets(net_id)] == [sub["id"]]
    nic = {"id": str(uuid.uuid4()), "name": "nic1", "mac": "56:6f:1a:2b:00:01"}
    port = ovirt.allocate(net_id, nic, "host-1")
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "fd00::1"}]
    ovirt.deallocate(nic["id"])
    ovirt.remove(net_id)
