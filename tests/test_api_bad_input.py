"""Bad input through the REST API (DESIGN.md, Invariants): every refused request gets
a 4xx with Neutron's ``{"NeutronError": {"type", "message", "detail"}}`` body, and
changes nothing: networks, subnets, ports and IP availabilities read the same before
and after it.

The in-process ``api`` fixture (SQLite store) is used throughout. Request bodies in
the tables below may name objects of the ``world`` fixture as ``"@net1"`` etc.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

SNAPSHOT = ("networks", "subnets", "ports", "network-ip-availabilities")
MAC1, MAC2, MAC3 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "fa:16:3e:00:00:03"
PORT1_IP = "10.0.0.10"
MAX_BODY = 1024 * 1024

BAD = "HTTPBadRequest"  # refused by the request schema
INVALID = "InvalidInput"  # refused by the store's validation, or a value Neutron's
# converters (convert_to_int, convert_to_boolean) refuse: "Invalid input for mtu.
# Reason: 'big' is not an integer." Numeric strings convert ("1400" is 1400, also for
# our own ha_count and dhcp_lease_time); booleans and floats are not integers here.
NOT_INT = "is not an integer"
NOT_BOOL = "cannot be converted to boolean"
# A refused dhcp_lease_time names the attribute and says what is allowed.
LEASE_RULE = ("dhcp_lease_time", "-1 (infinite)", "from 120 to 2147483647", "null")


# helpers


def snapshot(api: TestClient) -> dict[str, Any]:
    """Everything a client can see of the store."""
    out = {}
    for collection in SNAPSHOT:
        resp = api.get(f"/v2.0/{collection}")
        assert resp.status_code == 200, resp.text
        out[collection] = resp.json()
    return out


def error_of(resp: Any, status: int, type_: str) -> str:
    """Check a Neutron error body; return its message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["NeutronError"], body
    err = body["NeutronError"]
    assert set(err) == {"type", "message", "detail"}, err
    assert err["type"] == type_, err
    message = err["message"]
    assert isinstance(message, str), err
    assert len(message.strip()) >= 10, err
    assert "internal server error" not in message.lower(), err
    assert isinstance(err["detail"], str), err
    return message


def refused(
    api: TestClient,
    method: str,
    url: str,
    status: int,
    type_: str,
    *,
    body: Any = None,
    content: bytes | str | None = None,
    mentions: tuple[str, ...] | str = (),
) -> str:
    """Send a bad request; check the error and that the store did not change."""
    before = snapshot(api)
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["json"] = body
    if content is not None:
        kwargs["content"] = content
    resp = api.request(method, url, **kwargs)
    message = error_of(resp, status, type_)
    for word in (mentions,) if isinstance(mentions, str) else mentions:
        assert word in message, f"{word!r} not in {message!r}"
    after = snapshot(api)
    assert after == before, f"{method} {url} was refused but changed the store"
    return message


def create(api: TestClient, collection: str, attrs: dict[str, Any]) -> dict[str, Any]:
    member = collection[:-1]
    resp = api.post(f"/v2.0/{collection}", json={member: attrs})
    assert resp.status_code == 201, resp.text
    return resp.json()[member]


def ips_of(port: dict[str, Any]) -> list[str]:
    return [f["ip_address"] for f in port["fixed_ips"]]


@dataclass
class World:
    """net1 (10.0.0.0/24, ports port1 and port2) and net2 (10.1.0.0/24, port3)."""

    net1: str
    net2: str
    sub1: str
    sub2: str
    port1: str
    port2: str
    port3: str
    port2_ip: str


def fill(value: Any, world: World) -> Any:
    """Replace ``"@name"`` placeholders by the world's ids."""
    if isinstance(value, str) and value.startswith("@"):
        return getattr(world, value[1:])
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    return value


@pytest.fixture
def world(api: TestClient) -> World:
    net1 = create(api, "networks", {"name": "net1"})["id"]
    net2 = create(api, "networks", {"name": "net2"})["id"]
    sub1 = create(api, "subnets", {"network_id": net1, "cidr": "10.0.0.0/24", "name": "sub1"})
    sub2 = create(api, "subnets", {"network_id": net2, "cidr": "10.1.0.0/24", "name": "sub2"})
    assert sub1["gateway_ip"] == "10.0.0.1"
    port1 = create(
        api,
        "ports",
        {"network_id": net1, "mac_address": MAC1, "fixed_ips": [{"ip_address": PORT1_IP}]},
    )
    port2 = create(api, "ports", {"network_id": net1, "mac_address": MAC2})
    port3 = create(api, "ports", {"network_id": net2, "mac_address": MAC3})
    assert ips_of(port1) == [PORT1_IP]
    return World(
        net1=net1,
        net2=net2,
        sub1=sub1["id"],
        sub2=sub2["id"],
        port1=port1["id"],
        port2=port2["id"],
        port3=port3["id"],
        port2_ip=ips_of(port2)[0],
    )


def case(case_id: str, attrs: dict, status: int, type_: str, mentions: str | tuple = ()) -> Any:
    return pytest.param(attrs, status, type_, mentions, id=case_id)


# networks

# dns_domain and dns_service (issue 16): refused on create and on update alike.
NETWORK_DNS = [
    case("dns-domain-no-dot", {"dns_domain": "example.org"}, 400, INVALID, ("dns_domain", "'.'")),
    case("dns-domain-dot", {"dns_domain": "."}, 400, INVALID, "dns_domain"),
    case("dns-domain-empty-label", {"dns_domain": "a..org."}, 400, INVALID, "dns_domain"),
    case("dns-domain-underscore", {"dns_domain": "my_lab.org."}, 400, INVALID, "dns_domain"),
    case("dns-domain-numeric-tld", {"dns_domain": "lab.123."}, 400, INVALID, "dns_domain"),
    case("dns-domain-label-64", {"dns_domain": "a" * 64 + ".org."}, 400, INVALID, "dns_domain"),
    case("dns-domain-newline", {"dns_domain": "a.org.\n"}, 400, INVALID, "dns_domain"),
    case("dns-domain-comma", {"dns_domain": "a,b.org."}, 400, INVALID, "dns_domain"),
    case("dns-domain-int", {"dns_domain": 5}, 400, INVALID, "dns_domain"),
    case("dns-service-word", {"dns_service": "maybe"}, 400, INVALID, ("dns_service", NOT_BOOL)),
    case("dns-service-list", {"dns_service": [True]}, 400, INVALID, "dns_service"),
]

NETWORK_CREATE = [
    case("vdsm-name-too-long", {"name": "n", "vdsm_name": "a" * 16}, 400, BAD, "vdsm_name"),
    case("vdsm-name-leading-dash", {"name": "n", "vdsm_name": "-bad"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-space", {"name": "n", "vdsm_name": "has space"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-slash", {"name": "n", "vdsm_name": "a/b"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-dotdot", {"name": "n", "vdsm_name": ".."}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-dot", {"name": "n", "vdsm_name": "br.100"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-unicode", {"name": "n", "vdsm_name": "réseau"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-newline", {"name": "n", "vdsm_name": "eth0\n"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-inner-nl", {"name": "n", "vdsm_name": "a\nb"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-tab", {"name": "n", "vdsm_name": "a\tb"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-nul", {"name": "n", "vdsm_name": "a\x00b"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-empty", {"name": "n", "vdsm_name": ""}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-not-str", {"name": "n", "vdsm_name": 5}, 400, BAD, "vdsm_name"),
    case("vdsm-name-with-bad-physnet", {"name": "a b", "vdsm_name": "x y"}, 400, INVALID, "x y"),
    case("ha-count-negative", {"name": "n", "ha_count": -1}, 400, INVALID, "ha_count"),
    case("ha-count-huge", {"name": "n", "ha_count": 10**6}, 400, INVALID, "ha_count"),
    case("lease-time-zero", {"name": "n", "dhcp_lease_time": 0}, 400, INVALID, LEASE_RULE),
    case("lease-time-119", {"name": "n", "dhcp_lease_time": 119}, 400, INVALID, LEASE_RULE),
    case("lease-time-1", {"name": "n", "dhcp_lease_time": 1}, 400, INVALID, LEASE_RULE),
    case("lease-time-minus-2", {"name": "n", "dhcp_lease_time": -2}, 400, INVALID, LEASE_RULE),
    case("lease-time-2**31", {"name": "n", "dhcp_lease_time": 2**31}, 400, INVALID, LEASE_RULE),
    case("lease-time-2**64", {"name": "n", "dhcp_lease_time": 2**64}, 400, INVALID, LEASE_RULE),
    case("lease-time-float", {"name": "n", "dhcp_lease_time": 1.5}, 400, INVALID, LEASE_RULE),
    case(
        "lease-time-whole-float", {"name": "n", "dhcp_lease_time": 600.0}, 400, INVALID, LEASE_RULE
    ),
    case(
        "lease-time-str-float", {"name": "n", "dhcp_lease_time": "600.5"}, 400, INVALID, LEASE_RULE
    ),
    case("lease-time-str-119", {"name": "n", "dhcp_lease_time": "119"}, 400, INVALID, LEASE_RULE),
    case("lease-time-str-empty", {"name": "n", "dhcp_lease_time": ""}, 400, INVALID, LEASE_RULE),
    case(
        "lease-time-infinite",
        {"name": "n", "dhcp_lease_time": "infinite"},
        400,
        INVALID,
        LEASE_RULE,
    ),
    case("lease-time-true", {"name": "n", "dhcp_lease_time": True}, 400, INVALID, LEASE_RULE),
    case("lease-time-false", {"name": "n", "dhcp_lease_time": False}, 400, INVALID, LEASE_RULE),
    case("lease-time-list", {"name": "n", "dhcp_lease_time": [600]}, 400, INVALID, LEASE_RULE),
    case("mtu-zero", {"name": "n", "mtu": 0}, 400, INVALID, "mtu"),
    case("mtu-negative", {"name": "n", "mtu": -1}, 400, INVALID, "mtu"),
    case("mtu-67", {"name": "n", "mtu": 67}, 400, INVALID, "mtu"),
    case("mtu-65536", {"name": "n", "mtu": 65536}, 400, INVALID, "mtu"),
    case("mtu-2**64", {"name": "n", "mtu": 2**64}, 400, INVALID, "mtu"),
    case("type-name-int", {"name": 123}, 400, BAD, "name"),
    case("mtu-big", {"name": "n", "mtu": "big"}, 400, INVALID, ("mtu", "'big'", NOT_INT)),
    case("mtu-str-float", {"name": "n", "mtu": "1500.0"}, 400, INVALID, ("mtu", NOT_INT)),
    case("mtu-str-empty", {"name": "n", "mtu": ""}, 400, INVALID, ("mtu", NOT_INT)),
    case("mtu-str-hex", {"name": "n", "mtu": "0x5dc"}, 400, INVALID, ("mtu", NOT_INT)),
    case("mtu-str-67", {"name": "n", "mtu": "67"}, 400, INVALID, "mtu"),  # converted, then range
    case("type-mtu-float", {"name": "n", "mtu": 1500.5}, 400, INVALID, ("mtu", NOT_INT)),
    case("type-mtu-whole-float", {"name": "n", "mtu": 1500.0}, 400, INVALID, ("mtu", NOT_INT)),
    case("type-mtu-true", {"name": "n", "mtu": True}, 400, INVALID, ("mtu", NOT_INT)),
    case("type-mtu-list", {"name": "n", "mtu": [1500]}, 400, INVALID, ("mtu", NOT_INT)),
    case("type-mtu-object", {"name": "n", "mtu": {"v": 1}}, 400, INVALID, ("mtu", NOT_INT)),
    case("type-admin-state", {"name": "n", "admin_state_up": "maybe"}, 400, INVALID, NOT_BOOL),
    case("admin-state-2", {"name": "n", "admin_state_up": 2}, 400, INVALID, "admin_state_up"),
    case("admin-state-float", {"name": "n", "admin_state_up": 1.0}, 400, INVALID, NOT_BOOL),
    case("type-ha-count", {"name": "n", "ha_count": "x"}, 400, INVALID, ("ha_count", NOT_INT)),
    case("ha-count-str-negative", {"name": "n", "ha_count": "-1"}, 400, INVALID, "ha_count"),
    case("type-shared", {"name": "n", "shared": "maybe"}, 400, INVALID, ("shared", NOT_BOOL)),
    case("port-security-str", {"name": "n", "port_security_enabled": "x"}, 400, INVALID, NOT_BOOL),
    case(
        "segmentation-id-str",
        {"name": "n", "provider:segmentation_id": "vlan10"},
        400,
        INVALID,
        ("provider:segmentation_id", NOT_INT),
    ),
    case(
        "segmentation-id-true",
        {"name": "n", "provider:segmentation_id": True},
        400,
        INVALID,
        "provider:segmentation_id",
    ),
    case(  # oVirt engine binds it as a Java Integer
        "segmentation-id-2**31",
        {"name": "n", "provider:segmentation_id": 2**31},
        400,
        BAD,
        "provider:segmentation_id",
    ),
    case(
        "two-conversions",
        {"name": "n", "mtu": "big", "shared": "maybe"},
        400,
        INVALID,
        ("mtu", "shared"),
    ),
    case(
        "conversion-and-unknown",
        {"name": "n", "mtu": "big", "foo": 1},
        400,
        BAD,
        ("mtu", "foo"),
    ),
    case("type-tags", {"name": "n", "tags": "x"}, 400, BAD, "tags"),
    case("unknown-attr", {"name": "n", "foo": 1}, 400, BAD, ("Unrecognized attribute", "foo")),
    case("unknown-attr-colon", {"name": "n", "provider:foo": "x"}, 400, BAD, "provider:foo"),
    case("read-only-status", {"name": "n", "status": "DOWN"}, 400, BAD, ("status", "cannot")),
    case("read-only-id", {"name": "n", "id": str(uuid.uuid4())}, 400, BAD, ("'id'", "cannot")),
    case("read-only-subnets", {"name": "n", "subnets": []}, 400, BAD, "subnets"),
    case("read-only-revision", {"name": "n", "revision_number": 7}, 400, BAD, "revision_number"),
    case("name-newline", {"name": "a\nb", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-cr", {"name": "ab\r", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-nul", {"name": "a\x00b", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-escape", {"name": "\x1b[31mred", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-del", {"name": "a\x7f", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-nel", {"name": "a\x85b", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-line-separator", {"name": "a\u2028b", "vdsm_name": "ok"}, 400, INVALID, "name"),
    case("name-257", {"name": "n" * 257, "vdsm_name": "ok"}, 400, BAD, "name"),
    case("description-nl", {"name": "n", "description": "a\nb"}, 400, INVALID, "description"),
    case("description-long", {"name": "n", "description": "d" * 1025}, 400, BAD, "description"),
    case("project-id-long", {"name": "n", "project_id": "p" * 256}, 400, BAD, "project_id"),
    *NETWORK_DNS,
]


@pytest.mark.parametrize(("attrs", "status", "type_", "mentions"), NETWORK_CREATE)
def test_network_create_refused(
    api: TestClient, world: World, attrs: dict, status: int, type_: str, mentions: Any
) -> None:
    refused(
        api, "POST", "/v2.0/networks", status, type_, body={"network": attrs}, mentions=mentions
    )


def test_valid_network_names_are_accepted(api: TestClient) -> None:
    """Positive control for the table above: the same shapes, valid, are created."""
    net = create(api, "networks", {"name": "réseau 1", "vdsm_name": "reseau_1-a"})
    assert (net["name"], net["vdsm_name"]) == ("réseau 1", "reseau_1-a")
    net = create(api, "networks", {"name": "ovirtmgmt", "mtu": 68, "ha_count": 0})
    assert (net["vdsm_name"], net["mtu"], net["ha_count"]) == ("ovirtmgmt", 68, 0)
    net = create(api, "networks", {"name": "n" * 256})  # oVirt's longest network name
    assert (net["name"], net["vdsm_name"]) == ("n" * 256, None)


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({"name": "my net"}, id="space"),
        pytest.param({"name": "a" * 16}, id="too-long-for-vdsm"),
        pytest.param({"name": "réseau"}, id="unicode"),
        pytest.param({"name": "../etc"}, id="slash"),
        pytest.param({}, id="no-name"),
        pytest.param({"name": "VM Net", "provider:physical_network": "phys net"}, id="bad-physnet"),
        pytest.param({"name": "x", "provider:physical_network": "net1"}, id="physnet-taken"),
        pytest.param({"name": "net1"}, id="name-taken"),
    ],
)
def test_a_name_that_gives_no_free_bridge_makes_a_network_without_one(
    api: TestClient, world: World, attrs: dict
) -> None:
    """oVirt engine never sends vdsm_name and its network names are free text: such a
    network is kept, without a bridge (no DHCP server), and says why."""
    net = create(api, "networks", attrs)
    assert net["vdsm_name"] is None
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["vdsm_name"] is None
    # Its ports get addresses; the port says why no DHCP server serves them.
    create(api, "subnets", {"network_id": net["id"], "cidr": "10.8.0.0/24"})
    port = create(api, "ports", {"network_id": net["id"]})
    assert port["fixed_ips"][0]["ip_address"].startswith("10.8.0.")
    # The bridge of net1 stays net1's.
    listed = api.get("/v2.0/networks", params={"vdsm_name": "net1"}).json()["networks"]
    assert [n["id"] for n in listed] == [world.net1]


def test_network_without_bridge_gets_one_by_vdsm_name_or_physical_network(
    api: TestClient, world: World
) -> None:
    first = create(api, "networks", {"name": "VM Net 1"})
    second = create(api, "networks", {"name": "VM Net 2"})
    assert first["vdsm_name"] is second["vdsm_name"] is None  # NULLs are not duplicates
    refused(
        api,
        "PUT",
        f"/v2.0/networks/{first['id']}",
        409,
        "VdsmNameInUse",
        body={"network": {"vdsm_name": "net2"}},
        mentions="net2",
    )
    resp = api.put(f"/v2.0/networks/{first['id']}", json={"network": {"vdsm_name": "vmnet1"}})
    assert resp.status_code == 200 and resp.json()["network"]["vdsm_name"] == "vmnet1"
    body = {"network": {"provider:physical_network": "vmnet2"}}
    resp = api.put(f"/v2.0/networks/{second['id']}", json=body)
    assert resp.status_code == 200 and resp.json()["network"]["vdsm_name"] == "vmnet2"
    # A network that has a bridge keeps it when provider:physical_network changes.
    body = {"network": {"provider:physical_network": "other"}}
    resp = api.put(f"/v2.0/networks/{second['id']}", json=body)
    assert resp.json()["network"]["vdsm_name"] == "vmnet2"


def test_bridge_comes_from_the_physical_network_before_the_name(api: TestClient) -> None:
    """As oVirt engine creates a network linked to a physical oVirt network."""
    body = {
        "name": "ovirtmgmt",
        "admin_state_up": True,
        "tenant_id": "oVirt",
        "provider:physical_network": "br_phys",
        "provider:network_type": "vlan",
        "provider:segmentation_id": 10,
        "mtu": 1500,
        "port_security_enabled": False,
    }
    net = create(api, "networks", body)
    assert net["vdsm_name"] == "br_phys"
    assert (net["provider:segmentation_id"], net["provider:network_type"]) == (10, "vlan")


def test_neutron_conversions_are_applied(api: TestClient) -> None:
    """Positive control for the conversion cases: what Neutron converts, we convert
    (python-openstackclient sends --mtu 1400 as "1400"), to the right type."""
    net = create(
        api,
        "networks",
        {
            "name": "conv",
            "mtu": "1400",
            "ha_count": " 2 ",
            "dhcp_lease_time": "600",
            "admin_state_up": "True",
            "shared": "0",
            "port_security_enabled": "off",
            "router:external": 0,
            "provider:segmentation_id": "+10",
        },
    )
    assert (net["mtu"], net["ha_count"], net["dhcp_lease_time"]) == (1400, 2, 600)
    assert (net["admin_state_up"], net["shared"], net["port_security_enabled"]) == (
        True,
        False,
        False,
    )
    assert (net["router:external"], net["provider:segmentation_id"]) == (False, 10)
    resp = api.put(
        f"/v2.0/networks/{net['id']}",
        json={"network": {"mtu": "9000", "admin_state_up": "no", "dhcp_lease_time": "-1"}},
    )
    assert resp.status_code == 200, resp.text
    net = resp.json()["network"]
    assert (net["mtu"], net["admin_state_up"], net["dhcp_lease_time"]) == (9000, False, -1)
    sub = create(
        api,
        "subnets",
        {"network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": "4", "enable_dhcp": "f"},
    )
    assert (sub["ip_version"], sub["enable_dhcp"]) == (4, False)
    # gateway_ip "" (oVirt's blank gateway box) is no gateway, on create and update.
    resp = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": ""}})
    assert resp.status_code == 200 and resp.json()["subnet"]["gateway_ip"] is None
    blank = create(
        api, "subnets", {"network_id": net["id"], "cidr": "10.10.0.0/24", "gateway_ip": ""}
    )
    assert blank["gateway_ip"] is None
    assert blank["allocation_pools"] == [{"start": "10.10.0.1", "end": "10.10.0.254"}]
    port = create(
        api,
        "ports",
        {"network_id": net["id"], "admin_state_up": 0, "port_security_enabled": "yes"},
    )
    assert (port["admin_state_up"], port["port_security_enabled"]) == (False, True)


@pytest.mark.parametrize("seconds", [None, -1, 120, 121, 86400, 2**31 - 1])
def test_valid_lease_times_are_accepted(api: TestClient, seconds: int | None) -> None:
    """Positive control for the dhcp_lease_time cases: the bounds themselves are allowed."""
    net = create(api, "networks", {"name": "n", "dhcp_lease_time": seconds})
    assert net["dhcp_lease_time"] == seconds
    resp = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"dhcp_lease_time": seconds}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["network"]["dhcp_lease_time"] == seconds


def test_refused_lease_time_keeps_the_one_set(api: TestClient, world: World) -> None:
    """A refused update leaves a set lease time (and the revision) as they were."""
    resp = api.put(f"/v2.0/networks/{world.net2}", json={"network": {"dhcp_lease_time": 600}})
    assert resp.status_code == 200, resp.text
    before = resp.json()["network"]
    for bad in (119, -2, "119", True, "6OO", "1e3", 1e3, "", "null"):
        refused(
            api,
            "PUT",
            f"/v2.0/networks/{world.net2}",
            400,
            INVALID,
            body={"network": {"dhcp_lease_time": bad}},
            mentions=LEASE_RULE,
        )
    assert api.get(f"/v2.0/networks/{world.net2}").json()["network"] == before


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({"name": "other", "vdsm_name": "net1"}, id="vdsm_name-given"),
        pytest.param({"name": "net 1", "vdsm_name": "net1"}, id="vdsm_name-given-free-name"),
    ],
)
def test_duplicate_vdsm_name_is_a_conflict(api: TestClient, world: World, attrs: dict) -> None:
    """Only a vdsm_name given explicitly conflicts; one derived from
    provider:physical_network or the name leaves the network without a bridge (above)."""
    refused(
        api,
        "POST",
        "/v2.0/networks",
        409,
        "VdsmNameInUse",
        body={"network": attrs},
        mentions="net1",
    )


NETWORK_UPDATE = [
    case("vdsm-name-leading-dash", {"vdsm_name": "-x"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-slash", {"vdsm_name": "a/b"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-newline", {"vdsm_name": "net1\n"}, 400, INVALID, "vdsm_name"),
    case("vdsm-name-too-long", {"vdsm_name": "b" * 16}, 400, BAD, "vdsm_name"),
    case("vdsm-name-taken", {"vdsm_name": "net2"}, 409, "VdsmNameInUse", "net2"),
    case("mtu-zero", {"mtu": 0}, 400, INVALID, "mtu"),
    case("mtu-65536", {"mtu": 65536}, 400, INVALID, "mtu"),
    case("ha-count-negative", {"ha_count": -1}, 400, INVALID, "ha_count"),
    case("lease-time-zero", {"dhcp_lease_time": 0}, 400, INVALID, LEASE_RULE),
    case("lease-time-119", {"dhcp_lease_time": 119}, 400, INVALID, LEASE_RULE),
    case("lease-time-minus-2", {"dhcp_lease_time": -2}, 400, INVALID, LEASE_RULE),
    case("lease-time-2**31", {"dhcp_lease_time": 2**31}, 400, INVALID, LEASE_RULE),
    case("lease-time-float", {"dhcp_lease_time": 120.5}, 400, INVALID, LEASE_RULE),
    case("lease-time-str-word", {"dhcp_lease_time": "ten"}, 400, INVALID, LEASE_RULE),
    case("lease-time-str-60", {"dhcp_lease_time": "60"}, 400, INVALID, LEASE_RULE),
    case("lease-time-true", {"dhcp_lease_time": True}, 400, INVALID, LEASE_RULE),
    case("lease-time-false", {"dhcp_lease_time": False}, 400, INVALID, LEASE_RULE),
    case("lease-time-object", {"dhcp_lease_time": {"s": 600}}, 400, INVALID, LEASE_RULE),
    case("lease-time-then-invalid", {"dhcp_lease_time": 600, "mtu": 1}, 400, INVALID, "mtu"),
    case("valid-then-lease-time", {"name": "r", "dhcp_lease_time": 60}, 400, INVALID, LEASE_RULE),
    case("name-newline", {"name": "x\ny"}, 400, INVALID, "name"),
    case("name-257", {"name": "n" * 257}, 400, BAD, "name"),
    case("type-name-int", {"name": 123}, 400, BAD, "name"),
    case("type-mtu-str", {"mtu": "abc"}, 400, INVALID, ("mtu", NOT_INT)),
    case("mtu-str-65536", {"mtu": "65536"}, 400, INVALID, "mtu"),
    case("type-admin-state", {"admin_state_up": "maybe"}, 400, INVALID, "admin_state_up"),
    case("ha-count-str", {"ha_count": "two"}, 400, INVALID, ("ha_count", NOT_INT)),
    case("conversion-then-invalid", {"mtu": "1400", "ha_count": -1}, 400, INVALID, "ha_count"),
    case("read-only-status", {"status": "DOWN"}, 400, BAD, "status"),
    case("read-only-id", {"id": str(uuid.uuid4())}, 400, BAD, "'id'"),
    case("unknown-attr", {"foo": "bar"}, 400, BAD, ("Unrecognized attribute", "foo")),
    case("valid-then-invalid", {"name": "renamed", "mtu": 1}, 400, INVALID, "mtu"),
    *NETWORK_DNS,
]


@pytest.mark.parametrize(("attrs", "status", "type_", "mentions"), NETWORK_UPDATE)
def test_network_update_refused(
    api: TestClient, world: World, attrs: dict, status: int, type_: str, mentions: Any
) -> None:
    refused(
        api,
        "PUT",
        f"/v2.0/networks/{world.net1}",
        status,
        type_,
        body={"network": attrs},
        mentions=mentions,
    )


# subnets

NEW_CIDR = "10.2.0.0/24"
SUBNET_CREATE = [
    case("cidr-garbage", {"cidr": "garbage"}, 400, INVALID, "cidr"),
    case("cidr-prefix-33", {"cidr": "10.2.0.0/33"}, 400, INVALID, "cidr"),
    case("cidr-octet-256", {"cidr": "256.0.0.0/24"}, 400, INVALID, "cidr"),
    case("cidr-ipv6", {"cidr": "fd00::/64"}, 400, INVALID, "cidr"),
    case("cidr-host-bits", {"cidr": "10.2.0.1/24"}, 400, INVALID, "cidr"),
    case("cidr-31", {"cidr": "10.2.0.0/31"}, 400, INVALID, "cidr"),
    case("cidr-32", {"cidr": "10.2.0.0/32"}, 400, INVALID, "cidr"),
    case("cidr-no-prefix", {"cidr": "10.2.0.0"}, 400, INVALID, "cidr"),
    case("cidr-7", {"cidr": "8.0.0.0/7"}, 400, INVALID, "cidr"),
    case("cidr-0", {"cidr": "0.0.0.0/0"}, 400, INVALID, "cidr"),
    case("cidr-newline", {"cidr": "10.2.0.0/24\n"}, 400, INVALID, "cidr"),
    case("cidr-empty", {"cidr": ""}, 400, INVALID, "cidr"),
    case("cidr-missing", {"cidr": None}, 400, INVALID, "cidr"),
    case("cidr-int", {"cidr": 10}, 400, BAD, "cidr"),
    case("ip-version-6", {"ip_version": 6}, 400, INVALID, "ip_version"),
    case("ip-version-garbage", {"ip_version": "four"}, 400, INVALID, ("ip_version", NOT_INT)),
    case("ip-version-6-str", {"ip_version": "6"}, 400, INVALID, ("cidr", "ip_version 6")),
    case("ip-version-float", {"ip_version": 4.0}, 400, INVALID, ("ip_version", NOT_INT)),
    case("gateway-outside", {"gateway_ip": "10.3.0.1"}, 400, INVALID, "gateway_ip"),
    case("gateway-network-address", {"gateway_ip": "10.2.0.0"}, 400, INVALID, "gateway_ip"),
    case("gateway-broadcast", {"gateway_ip": "10.2.0.255"}, 400, INVALID, "gateway_ip"),
    case("gateway-garbage", {"gateway_ip": "garbage"}, 400, INVALID, "gateway_ip"),
    case("gateway-ipv6", {"gateway_ip": "fd00::1"}, 400, INVALID, "gateway_ip"),
    case(
        "pool-outside",
        {"allocation_pools": [{"start": "10.3.0.10", "end": "10.3.0.20"}]},
        400,
        INVALID,
        "10.3.0.10",
    ),
    case(
        "pool-reaches-broadcast",
        {"allocation_pools": [{"start": "10.2.0.200", "end": "10.2.0.255"}]},
        400,
        INVALID,
        "10.2.0.255",
    ),
    case(
        "pool-from-network-address",
        {"allocation_pools": [{"start": "10.2.0.0", "end": "10.2.0.20"}]},
        400,
        INVALID,
        "10.2.0.0",
    ),
    case(
        "pools-overlapping",
        {
            "allocation_pools": [
                {"start": "10.2.0.10", "end": "10.2.0.20"},
                {"start": "10.2.0.15", "end": "10.2.0.30"},
            ]
        },
        400,
        INVALID,
        "overlapping",
    ),
    case(
        "pools-same",
        {
            "allocation_pools": [
                {"start": "10.2.0.10", "end": "10.2.0.20"},
                {"start": "10.2.0.10", "end": "10.2.0.20"},
            ]
        },
        400,
        INVALID,
        "overlapping",
    ),
    case(
        "pool-contains-default-gateway",
        {"allocation_pools": [{"start": "10.2.0.1", "end": "10.2.0.20"}]},
        400,
        INVALID,
        "10.2.0.1",
    ),
    case(
        "pool-contains-given-gateway",
        {
            "gateway_ip": "10.2.0.50",
            "allocation_pools": [{"start": "10.2.0.2", "end": "10.2.0.99"}],
        },
        400,
        INVALID,
        "10.2.0.50",
    ),
    case(
        "pool-start-after-end",
        {"allocation_pools": [{"start": "10.2.0.20", "end": "10.2.0.10"}]},
        400,
        INVALID,
        "10.2.0.20",
    ),
    case("pools-empty", {"allocation_pools": []}, 400, INVALID, "allocation_pools"),
    case(
        "pool-start-garbage",
        {"allocation_pools": [{"start": "garbage", "end": "10.2.0.10"}]},
        400,
        INVALID,
        "allocation_pools",
    ),
    case(
        "pool-end-ipv6",
        {"allocation_pools": [{"start": "10.2.0.2", "end": "fd00::1"}]},
        400,
        INVALID,
        "allocation_pools",
    ),
    case(
        "pool-missing-end",
        {"allocation_pools": [{"start": "10.2.0.2"}]},
        400,
        BAD,
        "allocation_pools",
    ),
    case("pools-not-a-list", {"allocation_pools": "x"}, 400, BAD, "allocation_pools"),
    case("overlap-inside", {"cidr": "10.0.0.0/25"}, 400, INVALID, ("overlaps", "10.0.0.0/24")),
    case("overlap-upper-half", {"cidr": "10.0.0.128/25"}, 400, INVALID, "overlaps"),
    case("overlap-around", {"cidr": "10.0.0.0/16"}, 400, INVALID, "overlaps"),
    case("overlap-same", {"cidr": "10.0.0.0/24"}, 400, INVALID, "overlaps"),
    case("network-unknown", {"network_id": str(uuid.uuid4())}, 404, "NetworkNotFound", "Network"),
    case("network-not-uuid", {"network_id": "nope"}, 400, INVALID, ("network_id", "nope")),
    case("network-missing", {"network_id": None}, 400, INVALID, "network_id"),
    case("network-int", {"network_id": 5}, 400, BAD, "network_id"),
    case("dns-garbage", {"dns_nameservers": ["garbage"]}, 400, INVALID, "dns_nameservers"),
    case("dns-ipv6", {"dns_nameservers": ["fd00::1"]}, 400, INVALID, "dns_nameservers"),
    case("dns-cidr", {"dns_nameservers": ["8.8.8.0/24"]}, 400, INVALID, "dns_nameservers"),
    case("dns-newline", {"dns_nameservers": ["8.8.8.8\n"]}, 400, INVALID, "dns_nameservers"),
    case(
        "dns-duplicate",
        {"dns_nameservers": ["8.8.8.8", "8.8.8.8"]},
        400,
        INVALID,
        ("dns_nameservers", "duplicate"),
    ),
    case(
        "dns-too-many",
        {"dns_nameservers": [f"10.9.9.{i}" for i in range(1, 7)]},
        400,
        INVALID,
        "dns_nameservers",
    ),
    case("dns-int", {"dns_nameservers": [8]}, 400, BAD, "dns_nameservers"),
    case(
        "route-destination-garbage",
        {"host_routes": [{"destination": "garbage", "nexthop": "10.2.0.5"}]},
        400,
        INVALID,
        "host_routes",
    ),
    case(
        "route-destination-host-bits",
        {"host_routes": [{"destination": "10.9.0.1/24", "nexthop": "10.2.0.5"}]},
        400,
        INVALID,
        "host_routes",
    ),
    case(
        "route-destination-ipv6",
        {"host_routes": [{"destination": "fd00::/64", "nexthop": "10.2.0.5"}]},
        400,
        INVALID,
        "host_routes",
    ),
    case(
        "route-nexthop-outside",
        {"host_routes": [{"destination": "10.9.0.0/24", "nexthop": "10.3.0.5"}]},
        400,
        INVALID,
        ("host_routes", "10.3.0.5"),
    ),
    case(
        "route-nexthop-garbage",
        {"host_routes": [{"destination": "10.9.0.0/24", "nexthop": "garbage"}]},
        400,
        INVALID,
        "nexthop",
    ),
    case(
        "route-nexthop-ipv6",
        {"host_routes": [{"destination": "10.9.0.0/24", "nexthop": "fd00::1"}]},
        400,
        INVALID,
        "nexthop",
    ),
    case(
        "route-duplicate-destination",
        {
            "host_routes": [
                {"destination": "10.9.0.0/24", "nexthop": "10.2.0.5"},
                {"destination": "10.9.0.0/24", "nexthop": "10.2.0.6"},
            ]
        },
        400,
        INVALID,
        "duplicate",
    ),
    case(
        "route-missing-nexthop",
        {"host_routes": [{"destination": "10.9.0.0/24"}]},
        400,
        BAD,
        "nexthop",
    ),
    case(
        "route-unknown-key",
        {"host_routes": [{"destination": "10.9.0.0/24", "nexthop": "10.2.0.5", "via": "x"}]},
        400,
        BAD,
        "via",
    ),
    case("name-newline", {"name": "a\nb"}, 400, INVALID, "name"),
    case("name-nul", {"name": "a\x00"}, 400, INVALID, "name"),
    case("name-256", {"name": "s" * 256}, 400, BAD, "name"),
    case("description-control", {"description": "\x07"}, 400, INVALID, "description"),
    case("type-enable-dhcp", {"enable_dhcp": "maybe"}, 400, INVALID, ("enable_dhcp", NOT_BOOL)),
    case("enable-dhcp-2", {"enable_dhcp": 2}, 400, INVALID, ("enable_dhcp", NOT_BOOL)),
    case("gateway-blank", {"gateway_ip": " "}, 400, INVALID, "gateway_ip"),
    case("type-name-int", {"name": 1}, 400, BAD, "name"),
    case("unknown-attr", {"foo": 1}, 400, BAD, ("Unrecognized attribute", "foo")),
    case("read-only-id", {"id": str(uuid.uuid4())}, 400, BAD, "'id'"),
    case("read-only-revision", {"revision_number": 3}, 400, BAD, "revision_number"),
]


@pytest.mark.parametrize(("attrs", "status", "type_", "mentions"), SUBNET_CREATE)
def test_subnet_create_refused(
    api: TestClient, world: World, attrs: dict, status: int, type_: str, mentions: Any
) -> None:
    body = {"network_id": world.net1, "cidr": NEW_CIDR, **attrs}
    body = {k: v for k, v in body.items() if v is not None}
    refused(api, "POST", "/v2.0/subnets", status, type_, body={"subnet": body}, mentions=mentions)


def test_second_overlapping_subnet_is_refused(api: TestClient) -> None:
    net = create(api, "networks", {"name": "ovl"})["id"]
    first = create(api, "subnets", {"network_id": net, "cidr": "192.168.0.0/24"})
    message = refused(
        api,
        "POST",
        "/v2.0/subnets",
        400,
        INVALID,
        body={"subnet": {"network_id": net, "cidr": "192.168.0.0/23"}},
    )
    assert first["id"] in message
    # Not overlapping: accepted on the same network; the same CIDR on another network too.
    create(api, "subnets", {"network_id": net, "cidr": "192.168.2.0/24"})
    other = create(api, "networks", {"name": "ovl2"})["id"]
    create(api, "subnets", {"network_id": other, "cidr": "192.168.0.0/24"})
    listed = api.get("/v2.0/subnets", params={"network_id": net}).json()["subnets"]
    assert sorted(s["cidr"] for s in listed) == ["192.168.0.0/24", "192.168.2.0/24"]


SUBNET_UPDATE = [
    case("cidr-change", {"cidr": "10.0.0.0/25"}, 400, INVALID, "cidr"),
    case("network-change", {"network_id": "@net2"}, 400, INVALID, "network_id"),
    case("ip-version-6", {"ip_version": 6}, 400, INVALID, "ip_version"),
    case("gateway-outside", {"gateway_ip": "10.1.0.1"}, 400, INVALID, "gateway_ip"),
    case("gateway-network-address", {"gateway_ip": "10.0.0.0"}, 400, INVALID, "gateway_ip"),
    case("gateway-broadcast", {"gateway_ip": "10.0.0.255"}, 400, INVALID, "gateway_ip"),
    case("gateway-garbage", {"gateway_ip": "x"}, 400, INVALID, "gateway_ip"),
    case("gateway-allocated", {"gateway_ip": PORT1_IP}, 400, INVALID, PORT1_IP),
    case("gateway-inside-pool", {"gateway_ip": "10.0.0.100"}, 400, INVALID, "10.0.0.100"),
    case(
        "pools-overlapping",
        {
            "allocation_pools": [
                {"start": "10.0.0.2", "end": "10.0.0.50"},
                {"start": "10.0.0.50", "end": "10.0.0.60"},
            ]
        },
        400,
        INVALID,
        "overlapping",
    ),
    case(
        "pool-contains-gateway",
        {"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.50"}]},
        400,
        INVALID,
        "10.0.0.1",
    ),
    case(
        "pool-outside",
        {"allocation_pools": [{"start": "10.1.0.2", "end": "10.1.0.50"}]},
        400,
        INVALID,
        "10.1.0.2",
    ),
    case(
        "pool-garbage",
        {"allocation_pools": [{"start": "10.0.0.2", "end": "ten"}]},
        400,
        INVALID,
        "allocation_pools",
    ),
    case(
        "pool-start-after-end",
        {"allocation_pools": [{"start": "10.0.0.50", "end": "10.0.0.2"}]},
        400,
        INVALID,
        "10.0.0.50",
    ),
    case("pools-empty", {"allocation_pools": []}, 400, INVALID, "allocation_pools"),
    case("dns-duplicate", {"dns_nameservers": ["1.1.1.1", "1.1.1.1"]}, 400, INVALID, "duplicate"),
    case("dns-garbage", {"dns_nameservers": ["one"]}, 400, INVALID, "dns_nameservers"),
    case(
        "dns-too-many",
        {"dns_nameservers": [f"1.1.1.{i}" for i in range(1, 7)]},
        400,
        INVALID,
        "dns_nameservers",
    ),
    case(
        "route-nexthop-outside",
        {"host_routes": [{"destination": "10.9.0.0/24", "nexthop": "10.1.0.1"}]},
        400,
        INVALID,
        "nexthop",
    ),
    case(
        "route-bad-destination",
        {"host_routes": [{"destination": "10.9.0.0/33", "nexthop": "10.0.0.5"}]},
        400,
        INVALID,
        "destination",
    ),
    case("name-newline", {"name": "a\nb"}, 400, INVALID, "name"),
    case("name-256", {"name": "s" * 256}, 400, BAD, "name"),
    case("unknown-attr", {"foo": 1}, 400, BAD, ("Unrecognized attribute", "foo")),
    case("read-only-id", {"id": str(uuid.uuid4())}, 400, BAD, "'id'"),
    case("valid-then-invalid", {"name": "ok", "dns_nameservers": ["x"]}, 400, INVALID, "dns"),
]


@pytest.mark.parametrize(("attrs", "status", "type_", "mentions"), SUBNET_UPDATE)
def test_subnet_update_refused(
    api: TestClient, world: World, attrs: dict, status: int, type_: str, mentions: Any
) -> None:
    refused(
        api,
        "PUT",
        f"/v2.0/subnets/{world.sub1}",
        status,
        type_,
        body={"subnet": fill(attrs, world)},
        mentions=mentions,
    )


# ports


def _opt(name: Any, value: Any, **more: Any) -> dict[str, Any]:
    return {"extra_dhcp_opts": [{"opt_name": name, "opt_value": value, **more}]}


OPTS = "extra_dhcp_opts"
# dns_name and extra_dhcp_opts (issue 16): refused on create and on update alike.
PORT_DNS = [
    case("dns-name-64", {"dns_name": "a" * 64}, 400, INVALID, ("dns_name", "1-63")),
    case("dns-name-256", {"dns_name": "a" * 256}, 400, INVALID, "dns_name"),
    case("dns-name-dot", {"dns_name": "vm.example"}, 400, INVALID, "dns_name"),
    case("dns-name-underscore", {"dns_name": "vm_1"}, 400, INVALID, "dns_name"),
    case("dns-name-space", {"dns_name": "vm 1"}, 400, INVALID, "dns_name"),
    case("dns-name-newline", {"dns_name": "vm\n"}, 400, INVALID, "dns_name"),
    case("dns-name-leading-dash", {"dns_name": "-vm"}, 400, INVALID, "dns_name"),
    case("dns-name-trailing-dash", {"dns_name": "vm-"}, 400, INVALID, "dns_name"),
    case("dns-name-digits", {"dns_name": "300"}, 400, INVALID, ("dns_name", "not all digits")),
    case("dns-name-lease-time", {"dns_name": "5m"}, 400, INVALID, "dns_name"),
    case("dns-name-ignore", {"dns_name": "ignore"}, 400, INVALID, "dns_name"),
    case("dns-name-non-ascii", {"dns_name": "réseau"}, 400, INVALID, "dns_name"),
    case("dns-name-int", {"dns_name": 5}, 400, INVALID, "dns_name"),
    case("opt-unknown", _opt("dhcp-script", "/bin/sh"), 400, INVALID, (OPTS, "dhcp-script")),
    case("opt-number", _opt("3", "10.0.0.1"), 400, INVALID, (OPTS, "'3'")),
    case("opt-name-int", _opt(67, "pxelinux.0"), 400, INVALID, (OPTS, "67")),
    case(
        "opt-name-directive",
        _opt("x\ndhcp-script=/bin/sh", "a"),
        400,
        INVALID,
        (OPTS, "not supported"),
    ),
    case(
        "opt-value-directive",
        _opt("bootfile-name", "x\ndhcp-script=/bin/sh"),
        400,
        INVALID,
        (OPTS, "bootfile-name"),
    ),
    case("opt-value-comma", _opt("bootfile-name", "a,b"), 400, INVALID, "bootfile-name"),
    case("opt-value-quote", _opt("bootfile-name", 'a"b'), 400, INVALID, "bootfile-name"),
    case("opt-value-space", _opt("bootfile-name", "a b"), 400, INVALID, "bootfile-name"),
    case("opt-value-empty", _opt("bootfile-name", ""), 400, INVALID, "bootfile-name"),
    case("opt-value-int", _opt("mtu", 1400), 400, INVALID, "mtu"),
    case("opt-ip-hostname", _opt("server-ip-address", "tftp.example"), 400, INVALID, "server"),
    case("opt-ip-garbage", _opt("ntp-server", "10.0.0.300"), 400, INVALID, "ntp-server"),
    case("opt-ntp-v6-in-v4", _opt("ntp-server", "fd00::1"), 400, INVALID, "ntp-server"),
    case("opt-tftp-slash", _opt("tftp-server", "a/b"), 400, INVALID, "tftp-server"),
    case("opt-mtu-small", _opt("mtu", "67"), 400, INVALID, "mtu"),
    case("opt-http-not-url", _opt("http-boot-url", "boot.efi"), 400, INVALID, "http-boot-url"),
    case("opt-no-v6-form", _opt("tftp-server", "10.0.0.1", ip_version=6), 400, INVALID, "IPv6"),
    case("opt-ip-version-5", _opt("mtu", "1400", ip_version=5), 400, INVALID, "ip_version"),
    case("opt-ip-version-word", _opt("mtu", "1400", ip_version="four"), 400, INVALID, "ip_ver"),
    case("opt-unknown-key", _opt("mtu", "1400", tag="x"), 400, BAD, "tag"),
    case("opt-no-name", {OPTS: [{"opt_value": "1400"}]}, 400, INVALID, (OPTS, "None")),
    case("opt-not-object", {OPTS: ["mtu=1400"]}, 400, BAD, OPTS),
    case("opts-not-list", {OPTS: "mtu=1400"}, 400, BAD, OPTS),
    case(
        "opt-twice",
        {
            OPTS: [
                {"opt_name": "67", "opt_value": "a.0"},
                {"opt_name": "bootfile-name", "opt_value": "b.0"},
            ]
        },
        400,
        INVALID,
        ("bootfile-name", "more than once"),
    ),
    case(
        "opts-repeated",
        {OPTS: [{"opt_name": "mtu", "opt_value": str(1400 + i)} for i in range(33)]},
        400,
        INVALID,
        "more than once",
    ),
    case("opts-65", {OPTS: [{"opt_name": "mtu", "opt_value": "1400"}] * 65}, 400, BAD, OPTS),
]

PORT_CREATE = [
    case("mac-bad-hex", {"mac_address": "zz:16:3e:00:00:01"}, 400, INVALID, "mac_address"),
    case("mac-g", {"mac_address": "fa:16:3e:00:00:0g"}, 400, INVALID, "mac_address"),
    case("mac-five-octets", {"mac_address": "fa:16:3e:00:00"}, 400, INVALID, "mac_address"),
    case("mac-seven-octets", {"mac_address": "fa:16:3e:00:00:01:02"}, 400, BAD, "mac_address"),
    case("mac-no-separators", {"mac_address": "fa163e000001"}, 400, INVALID, "mac_address"),
    case("mac-short-octets", {"mac_address": "fa:16:3e:0:0:1"}, 400, INVALID, "mac_address"),
    case("mac-dots", {"mac_address": "fa16.3e00.0001"}, 400, INVALID, "mac_address"),
    case("mac-mixed-sep", {"mac_address": "fa:16-3e:00:00;01"}, 400, INVALID, "mac_address"),
    case("mac-newline", {"mac_address": "fa:16:3e:00:\n:01"}, 400, INVALID, "mac_address"),
    case("mac-int", {"mac_address": 1}, 400, BAD, "mac_address"),
    case("mac-multicast", {"mac_address": "01:00:5e:00:00:01"}, 400, INVALID, "multicast"),
    case("mac-multicast-v6", {"mac_address": "33:33:00:00:00:01"}, 400, INVALID, "multicast"),
    case("mac-odd-first-octet", {"mac_address": "fb:16:3e:00:00:01"}, 400, INVALID, "multicast"),
    case("mac-broadcast", {"mac_address": "ff:ff:ff:ff:ff:ff"}, 400, INVALID, "multicast"),
    case("mac-all-zero", {"mac_address": "00:00:00:00:00:00"}, 400, INVALID, "mac_address"),
    case("mac-in-use", {"mac_address": MAC1}, 409, "MacAddressInUse", MAC1),
    case("mac-in-use-upper", {"mac_address": MAC1.upper()}, 409, "MacAddressInUse", MAC1),
    case("mac-in-use-dashes", {"mac_address": MAC1.replace(":", "-")}, 409, "MacAddressInUse"),
    case(
        "ip-outside-given-subnet",
        {"fixed_ips": [{"subnet_id": "@sub1", "ip_address": "10.1.0.5"}]},
        400,
        INVALID,
        "10.1.0.5",
    ),
    case(
        "ip-on-no-subnet",
        {"fixed_ips": [{"ip_address": "192.168.7.7"}]},
        400,
        INVALID,
        "192.168.7.7",
    ),
    case(
        "ip-of-other-network",
        {"fixed_ips": [{"ip_address": "10.1.0.5"}]},
        400,
        INVALID,
        "10.1.0.5",
    ),
    case("ip-gateway", {"fixed_ips": [{"ip_address": "10.0.0.1"}]}, 400, INVALID, "gateway"),
    case(
        "ip-gateway-with-subnet",
        {"fixed_ips": [{"subnet_id": "@sub1", "ip_address": "10.0.0.1"}]},
        400,
        INVALID,
        "gateway",
    ),
    case("ip-network-address", {"fixed_ips": [{"ip_address": "10.0.0.0"}]}, 400, INVALID, "valid"),
    case("ip-broadcast", {"fixed_ips": [{"ip_address": "10.0.0.255"}]}, 400, INVALID, "valid"),
    case(
        "ip-in-use",
        {"fixed_ips": [{"ip_address": PORT1_IP}]},
        409,
        "IpAddressAlreadyAllocated",
        PORT1_IP,
    ),
    case(
        "ip-in-use-with-subnet",
        {"fixed_ips": [{"subnet_id": "@sub1", "ip_address": PORT1_IP}]},
        409,
        "IpAddressAlreadyAllocated",
        PORT1_IP,
    ),
    case(
        "subnet-of-other-network",
        {"fixed_ips": [{"subnet_id": "@sub2"}]},
        400,
        INVALID,
        "subnet",
    ),
    case(
        "subnet-of-other-network-with-ip",
        {"fixed_ips": [{"subnet_id": "@sub2", "ip_address": "10.1.0.5"}]},
        400,
        INVALID,
        "subnet",
    ),
    case("subnet-unknown", {"fixed_ips": [{"subnet_id": str(uuid.uuid4())}]}, 400, INVALID),
    case("subnet-not-uuid", {"fixed_ips": [{"subnet_id": "nope"}]}, 400, INVALID, "subnet_id"),
    case("fixed-ip-empty-entry", {"fixed_ips": [{}]}, 400, INVALID, "fixed_ips"),
    case("ip-garbage", {"fixed_ips": [{"ip_address": "garbage"}]}, 400, INVALID, "ip_address"),
    case("ip-ipv6", {"fixed_ips": [{"ip_address": "fd00::5"}]}, 400, INVALID, "fd00::5"),
    case(
        "ip-twice",
        {"fixed_ips": [{"ip_address": "10.0.0.20"}, {"ip_address": "10.0.0.20"}]},
        400,
        INVALID,
        "duplicate",
    ),
    case("fixed-ips-string", {"fixed_ips": "x"}, 400, BAD, "fixed_ips"),
    case("fixed-ips-list-of-str", {"fixed_ips": ["10.0.0.20"]}, 400, BAD, "fixed_ips"),
    case(
        "fixed-ips-unknown-key",
        {"fixed_ips": [{"ip": "10.0.0.20"}]},
        400,
        BAD,
        ("Unrecognized attribute", "ip"),
    ),
    case(
        "fixed-ips-too-many",
        {"fixed_ips": [{"ip_address": f"10.0.0.{i}"} for i in range(20, 37)]},
        400,
        BAD,
        "fixed_ips",
    ),
    case("network-unknown", {"network_id": str(uuid.uuid4())}, 404, "NetworkNotFound", "Network"),
    case("network-not-uuid", {"network_id": "nope"}, 400, INVALID, "network_id"),
    case("network-missing", {"network_id": None}, 400, INVALID, "network_id"),
    case("name-newline", {"name": "vm\n1"}, 400, INVALID, "name"),
    case("name-256", {"name": "p" * 256}, 400, BAD, "name"),
    case("device-id-nul", {"device_id": "a\x00"}, 400, INVALID, "device_id"),
    case("device-owner-newline", {"device_owner": "compute:\n"}, 400, INVALID, "device_owner"),
    case("host-id-control", {"binding:host_id": "h\x1b"}, 400, INVALID, "binding:host_id"),
    case("type-name-int", {"name": 123}, 400, BAD, "name"),
    case("type-admin-state", {"admin_state_up": "maybe"}, 400, INVALID, "admin_state_up"),
    case("port-security-2", {"port_security_enabled": 2}, 400, INVALID, NOT_BOOL),
    case("type-security-groups", {"security_groups": "default"}, 400, BAD, "security_groups"),
    case(  # oVirt engine reads binding:profile as Map<String, String>
        "binding-profile-nested",
        {"binding:profile": {"capabilities": ["switchdev"]}},
        400,
        BAD,
        ("binding:profile", "strings"),
    ),
    case(
        "binding-profile-bool",
        {"binding:profile": {"trusted": True}},
        400,
        BAD,
        ("binding:profile", "trusted"),
    ),
    case("binding-profile-list", {"binding:profile": ["a"]}, 400, BAD, "binding:profile"),
    case("read-only-status", {"status": "ACTIVE"}, 400, BAD, ("status", "cannot")),
    case("read-only-id", {"id": str(uuid.uuid4())}, 400, BAD, "'id'"),
    case("read-only-vif-type", {"binding:vif_type": "ovs"}, 400, BAD, "binding:vif_type"),
    case("unknown-attr", {"foo": 1}, 400, BAD, ("Unrecognized attribute", "foo")),
    *PORT_DNS,
]


@pytest.mark.parametrize(("attrs", "status", "type_", "mentions"), PORT_CREATE)
def test_port_create_refused(
    api: TestClient, world: World, attrs: dict, status: int, type_: str, mentions: Any
) -> None:
    body = {"network_id": world.net1, "name": "refused", **fill(attrs, world)}
    body = {k: v for k, v in body.items() if v is not None}
    refused(api, "POST", "/v2.0/ports", status, type_, body={"port": body}, mentions=mentions)


def test_same_mac_on_another_network_is_allowed(api: TestClient, world: World) -> None:
    refused(
        api,
        "POST",
        "/v2.0/ports",
        409,
        "MacAddressInUse",
        body={"port": {"network_id": world.net1, "mac_address": MAC1}},
    )
    port = create(api, "ports", {"network_id": world.net2, "mac_address": MAC1})
    assert port["mac_address"] == MAC1
    refused(
        api,
        "POST",
        "/v2.0/ports",
        409,
        "MacAddressInUse",
        body={"port": {"network_id": world.net2, "mac_address": MAC1.upper()}},
    )
    listed = api.get("/v2.0/ports", params={"mac_address": MAC1}).json()["ports"]
    assert sorted(p["network_id"] for p in listed) == sorted([world.net1, world.net2])


PORT_UPDATE = [
    case("network-change", {"network_id": "@net2"}, 400, INVALID, "network_id"),
    case("mac-of-other-port", {"mac_address": MAC2}, 409, "MacAddressInUse", MAC2),
    case("mac-malformed", {"mac_address": "fa:16:3e:00:00"}, 400, INVALID, "mac_address"),
    case("mac-multicast", {"mac_address": "01:00:5e:00:00:09"}, 400, INVALID, "multicast"),
    case(
        "ip-in-use",
        {"fixed_ips": [{"ip_address": "@port2_ip"}]},
        409,
        "IpAddressAlreadyAllocated",
    ),
    case(
        "ip-new-then-in-use",
        {"fixed_ips": [{"ip_address": "10.0.0.20"}, {"ip_address": "@port2_ip"}]},
        409,
        "IpAddressAlreadyAllocated",
    ),
    case(
        "ip-kept-then-gateway",
        {"fixed_ips": [{"ip_address": PORT1_IP}, {"ip_address": "10.0.0.1"}]},
        400,
        INVALID,
        "gateway",
    ),
    case(
        "ip-outside",
        {"fixed_ips": [{"subnet_id": "@sub1", "ip_address": "10.1.0.9"}]},
        400,
        INVALID,
        "10.1.0.9",
    ),
    case("subnet-of-other-network", {"fixed_ips": [{"subnet_id": "@sub2"}]}, 400, INVALID),
    case("fixed-ips-string", {"fixed_ips": "x"}, 400, BAD, "fixed_ips"),
    case("name-newline", {"name": "a\nb"}, 400, INVALID, "name"),
    case("name-256", {"name": "p" * 256}, 400, BAD, "name"),
    case("type-admin-state", {"admin_state_up": "maybe"}, 400, INVALID, "admin_state_up"),
    case("admin-state-list", {"admin_state_up": [True]}, 400, INVALID, NOT_BOOL),
    case("binding-profile-int", {"binding:profile": {"n": 1}}, 400, BAD, "binding:profile"),
    case("read-only-status", {"status": "ACTIVE"}, 400, BAD, "status"),
    case("read-only-id", {"id": str(uuid.uuid4())}, 400, BAD, "'id'"),
    case("unknown-attr", {"foo": 1}, 400, BAD, ("Unrecognized attribute", "foo")),
    case("valid-then-invalid", {"name": "ok", "mac_address": "nope"}, 400, INVALID, "mac"),
    case("valid-then-bad-option", {"dns_name": "ok", **_opt("66", "a/b")}, 400, INVALID, "tftp"),
    *PORT_DNS,
]


@pytest.mark.parametrize(("attrs", "status", "type_", "mentions"), PORT_UPDATE)
def test_port_update_refused(
    api: TestClient, world: World, attrs: dict, status: int, type_: str, mentions: Any
) -> None:
    refused(
        api,
        "PUT",
        f"/v2.0/ports/{world.port1}",
        status,
        type_,
        body={"port": fill(attrs, world)},
        mentions=mentions,
    )


# failed port creation leaves nothing behind


@pytest.mark.parametrize(
    ("fixed_ips", "status", "type_"),
    [
        pytest.param(
            [{"ip_address": "10.0.0.20"}, {"ip_address": "10.0.0.1"}],
            400,
            INVALID,
            id="second-is-gateway",
        ),
        pytest.param(
            [{"ip_address": "10.0.0.20"}, {"ip_address": "10.0.0.300"}],
            400,
            INVALID,
            id="second-is-garbage",
        ),
        pytest.param(
            [{"ip_address": "10.0.0.20"}, {"ip_address": PORT1_IP}],
            409,
            "IpAddressAlreadyAllocated",
            id="second-in-use",
        ),
        pytest.param(
            [{"subnet_id": "@sub1"}, {"ip_address": PORT1_IP}],
            409,
            "IpAddressAlreadyAllocated",
            id="first-automatic-second-in-use",
        ),
        pytest.param(
            [{"ip_address": "10.0.0.20"}, {"subnet_id": "@sub2"}],
            400,
            INVALID,
            id="second-on-other-network",
        ),
    ],
)
def test_failed_port_create_leaves_no_port_and_no_allocation(
    api: TestClient, world: World, fixed_ips: list, status: int, type_: str
) -> None:
    before_used = api.get(f"/v2.0/network-ip-availabilities/{world.net1}").json()
    attrs = {"network_id": world.net1, "name": "half", "fixed_ips": fill(fixed_ips, world)}
    refused(api, "POST", "/v2.0/ports", status, type_, body={"port": attrs})
    assert api.get("/v2.0/ports", params={"name": "half"}).json()["ports"] == []
    after_used = api.get(f"/v2.0/network-ip-availabilities/{world.net1}").json()
    assert after_used == before_used
    # The address the refused request asked for first is still free ...
    wanted = [{"ip_address": "10.0.0.20"}]
    port = create(api, "ports", {"network_id": world.net1, "fixed_ips": wanted})
    assert ips_of(port) == ["10.0.0.20"]
    # ... and the automatic allocator did not move: the next address is the first never used.
    taken = {PORT1_IP, world.port2_ip, "10.0.0.20"}
    expected = next(
        str(ip)
        for ip in ipaddress.ip_network("10.0.0.0/24").hosts()
        if str(ip) not in taken and str(ip) != "10.0.0.1"
    )
    assert ips_of(create(api, "ports", {"network_id": world.net1})) == [expected]


def test_pool_exhaustion_gives_exactly_the_pool_size(api: TestClient) -> None:
    net = create(api, "networks", {"name": "small"})["id"]
    sub = create(api, "subnets", {"network_id": net, "cidr": "10.5.0.0/29"})
    assert sub["gateway_ip"] == "10.5.0.1"
    assert sub["allocation_pools"] == [{"start": "10.5.0.2", "end": "10.5.0.6"}]
    made: list[dict] = []
    for _ in range(20):
        before = snapshot(api)
        resp = api.post("/v2.0/ports", json={"port": {"network_id": net}})
        if resp.status_code != 201:
            error_of(resp, 409, "IpAddressGenerationFailure")
            assert snapshot(api) == before
            break
        made.append(resp.json()["port"])
    else:
        pytest.fail("20 ports were created on a /29")
    assert len(made) == 5
    assert sorted(ip for p in made for ip in ips_of(p)) == [f"10.5.0.{i}" for i in range(2, 7)]
    avail = api.get(f"/v2.0/network-ip-availabilities/{net}").json()["network_ip_availability"]
    assert (avail["total_ips"], avail["used_ips"]) == (5, 5)
    # Asking for the exhausted subnet by id fails the same way.
    refused(
        api,
        "POST",
        "/v2.0/ports",
        409,
        "IpAddressGenerationFailure",
        body={"port": {"network_id": net, "fixed_ips": [{"subnet_id": sub["id"]}]}},
    )
    # Freeing one address makes exactly one more port possible.
    assert api.delete(f"/v2.0/ports/{made[2]['id']}").status_code == 204
    again = create(api, "ports", {"network_id": net})
    assert ips_of(again) == ips_of(made[2])
    refused(
        api,
        "POST",
        "/v2.0/ports",
        409,
        "IpAddressGenerationFailure",
        body={"port": {"network_id": net}},
    )


# unknown ids

RESOURCES = [
    pytest.param("networks", "network", "NetworkNotFound", id="network"),
    pytest.param("subnets", "subnet", "SubnetNotFound", id="subnet"),
    pytest.param("ports", "port", "PortNotFound", id="port"),
]


@pytest.mark.parametrize("missing", [str(uuid.uuid4()), "does-not-exist"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize(("collection", "member", "type_"), RESOURCES)
def test_unknown_id_is_not_found(
    api: TestClient,
    world: World,
    collection: str,
    member: str,
    type_: str,
    method: str,
    missing: str,
) -> None:
    body = {member: {"name": "x"}} if method == "PUT" else None
    refused(api, method, f"/v2.0/{collection}/{missing}", 404, type_, body=body, mentions=missing)


def test_unknown_network_availability_is_not_found(api: TestClient, world: World) -> None:
    missing = str(uuid.uuid4())
    refused(
        api,
        "GET",
        f"/v2.0/network-ip-availabilities/{missing}",
        404,
        "NetworkNotFound",
        mentions=missing,
    )


# bodies that are not what the API reads

BODIES = [
    pytest.param(b"{not json", "not valid JSON", id="not-json"),
    pytest.param(b"{'network': {}}", "not valid JSON", id="python-literal"),
    pytest.param(b"", "body", id="empty"),
    pytest.param(b"[]", "body", id="list"),
    pytest.param(b"null", "body", id="null"),
    pytest.param(b'"network"', "body", id="string"),
    pytest.param(b"\xff\xfe\x00", "body", id="binary"),
]


@pytest.mark.parametrize(("content", "mentions"), BODIES)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/v2.0/{collection}", id="create"),
        pytest.param("PUT", "/v2.0/{collection}/{item}", id="update"),
    ],
)
@pytest.mark.parametrize("collection", ["networks", "subnets", "ports"])
def test_unreadable_body_is_refused(
    api: TestClient,
    world: World,
    collection: str,
    method: str,
    path: str,
    content: bytes,
    mentions: str,
) -> None:
    item = {"networks": world.net1, "subnets": world.sub1, "ports": world.port1}[collection]
    url = path.format(collection=collection, item=item)
    refused(api, method, url, 400, BAD, content=content, mentions=mentions)


@pytest.mark.parametrize(
    ("collection", "body", "mentions"),
    [
        pytest.param("networks", {"name": "x"}, ("network", "Unrecognized"), id="network-bare"),
        pytest.param("networks", {"port": {"name": "x"}}, ("network", "port"), id="as-port"),
        pytest.param("networks", {"network": "x"}, "network", id="network-wrapper-string"),
        pytest.param("networks", {"network": None}, "network", id="network-wrapper-null"),
        pytest.param("networks", {"network": [{"name": "x"}]}, "network", id="network-list"),
        pytest.param(
            "networks", {"network": {"name": "x"}, "extra": 1}, "extra", id="network-extra-key"
        ),
        pytest.param("networks", {"networks": [{"name": "x"}]}, "networks", id="network-bulk"),
        pytest.param("subnets", {"cidr": "10.9.0.0/24"}, "subnet", id="subnet-bare"),
        pytest.param("ports", {"network_id": "x"}, "port", id="port-bare"),
        pytest.param("ports", {}, "port", id="port-empty-object"),
    ],
)
def test_body_without_its_wrapper_is_refused(
    api: TestClient, world: World, collection: str, body: dict, mentions: Any
) -> None:
    refused(api, "POST", f"/v2.0/{collection}", 400, BAD, body=body, mentions=mentions)


@pytest.mark.parametrize(
    ("method", "path", "member"),
    [
        pytest.param("POST", "/v2.0/networks", "network", id="create-network"),
        pytest.param("POST", "/v2.0/ports", "port", id="create-port"),
        pytest.param("PUT", "/v2.0/networks/{net1}", "network", id="update-network"),
        pytest.param("PUT", "/v2.0/subnets/{sub1}", "subnet", id="update-subnet"),
    ],
)
def test_oversized_body_is_refused(
    api: TestClient, world: World, method: str, path: str, member: str
) -> None:
    tags = ["t" * 1000] * 1100  # about 1.1 MB of otherwise valid JSON
    content = json.dumps({member: {"name": "big", "tags": tags}}).encode()
    assert len(content) > MAX_BODY
    url = path.format(net1=world.net1, sub1=world.sub1)
    refused(api, method, url, 413, "HTTPRequestEntityTooLarge", content=content, mentions="larger")
    padded = b" " * (MAX_BODY + 1) + json.dumps({member: {"name": "big"}}).encode()
    refused(api, method, url, 413, "HTTPRequestEntityTooLarge", content=padded)


# list filters


@pytest.mark.parametrize(
    ("collection", "query"),
    [
        ("networks", "foo=bar"),
        ("networks", "name=net1&bogus=1"),
        ("subnets", "gateway=10.0.0.1"),
        ("ports", "ip_address=10.0.0.10"),
        ("ports", "mac=fa:16:3e:00:00:01"),
        ("network-ip-availabilities", "foo=1"),
    ],
)
def test_unknown_filter_is_refused(
    api: TestClient, world: World, collection: str, query: str
) -> None:
    key = query.split("&")[-1].split("=")[0]
    refused(api, "GET", f"/v2.0/{collection}?{query}", 400, BAD, mentions=key)


def test_bad_limit_is_refused(api: TestClient, world: World) -> None:
    refused(api, "GET", "/v2.0/ports?limit=abc", 400, INVALID, mentions="limit")


# deleting what is in use


def test_network_with_ports_cannot_be_deleted(api: TestClient, world: World) -> None:
    refused(api, "DELETE", f"/v2.0/networks/{world.net1}", 409, "NetworkInUse", mentions=world.net1)
    # Without its port, net2 goes (with its subnet).
    assert api.delete(f"/v2.0/ports/{world.port3}").status_code == 204
    assert api.delete(f"/v2.0/networks/{world.net2}").status_code == 204
    assert api.get(f"/v2.0/subnets/{world.sub2}").status_code == 404


def test_subnet_with_allocations_cannot_be_deleted(api: TestClient, world: World) -> None:
    refused(api, "DELETE", f"/v2.0/subnets/{world.sub1}", 409, "SubnetInUse", mentions=world.sub1)
    for port in (world.port1, world.port2):
        assert api.delete(f"/v2.0/ports/{port}").status_code == 204
    assert api.delete(f"/v2.0/subnets/{world.sub1}").status_code == 204
