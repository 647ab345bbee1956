"""IPv6 subnets in the store and the API, as Neutron defines them: the address and
router-advertisement modes and the combinations Neutron accepts, EUI-64 addresses on
SLAAC and DHCPv6-stateless subnets, pools on stateful ones (a /64 costs what a /120
does), dual stack, availability without overflow, and Neutron's refusals. What the
data plane does with them: test_dhcpv6."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ipam.dhcp.notifier import port_state, subnet_state
from ipam.exceptions import InvalidInput, IpAddressAlreadyAllocated
from ipam.store import Store, allocation
from tests.conftest import statements_run

MAC = "fa:16:3e:11:22:33"
EUI64 = "2001:db8:1:0:f816:3eff:fe11:2233"  # of MAC in 2001:db8:1::/64


def eui64(prefix: str, mac: str) -> str:
    """RFC 4291 appendix A, written out independently of the code under test."""
    octets = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([octets[0] ^ 2, *octets[1:3], 0xFF, 0xFE, *octets[3:]])
    net = ipaddress.IPv6Network(prefix)
    return str(net.network_address + int.from_bytes(iid, "big"))


@pytest.fixture
def net(store: Store) -> str:
    return store.create_network({"name": "n6"})["id"]


def v6(store: Store, net: str, cidr: str, **attrs: Any) -> dict[str, Any]:
    return store.create_subnet({"network_id": net, "cidr": cidr, "ip_version": 6, **attrs})


def test_the_known_eui64_address() -> None:
    assert eui64("2001:db8:1::/64", MAC) == EUI64
    assert str(allocation.eui64("2001:db8:1::/64", MAC)) == EUI64


def test_stateful_subnet_defaults_and_pool_allocation(store: Store, net: str) -> None:
    """No modes (what oVirt engine sends): gateway ::1, one pool from ::2 to the end,
    addresses handed out in order; a freed address comes back only when the pool has
    no never-used one left."""
    sub = v6(store, net, "2001:db8::/64", dns_nameservers=["2001:db8::53"])
    assert (sub["ip_version"], sub["gateway_ip"]) == (6, "2001:db8::1")
    assert (sub["ipv6_address_mode"], sub["ipv6_ra_mode"]) == (None, None)
    assert sub["allocation_pools"] == [
        {"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}
    ]
    assert sub["dns_nameservers"] == ["2001:db8::53"]
    ips = [store.create_port({"network_id": net})["fixed_ips"] for _ in range(3)]
    assert [f[0]["ip_address"] for f in ips] == ["2001:db8::2", "2001:db8::3", "2001:db8::4"]
    small = v6(
        store,
        store.create_network({"name": "small"})["id"],
        "2001:db8:9::/120",
        allocation_pools=[{"start": "2001:db8:9::10", "end": "2001:db8:9::11"}],
    )
    first, second = (store.create_port({"network_id": small["network_id"]}) for _ in range(2))
    assert [first["fixed_ips"][0]["ip_address"], second["fixed_ips"][0]["ip_address"]] == [
        "2001:db8:9::10",
        "2001:db8:9::11",
    ]
    store.delete_port(first["id"])
    again = store.create_port({"network_id": small["network_id"]})
    assert again["fixed_ips"][0]["ip_address"] == "2001:db8:9::10"


def test_an_allocation_in_a_64_runs_the_statements_of_one_in_a_120(store: Store) -> None:
    nets = [store.create_network({"name": f"c{i}"})["id"] for i in range(2)]
    v6(store, nets[0], "2001:db8:a::/64")
    v6(store, nets[1], "2001:db8:b::/120")

    def statements(net_id: str) -> int:
        return statements_run(store, lambda: store.create_port({"network_id": net_id}))

    for net_id in nets:
        store.create_port({"network_id": net_id})  # warm the caches
    assert statements(nets[0]) == statements(nets[1])


def test_specific_addresses_on_a_stateful_subnet(store: Store, net: str) -> None:
    sub = v6(store, net, "2001:db8::/64")
    want = {"subnet_id": sub["id"], "ip_address": "2001:db8::abcd"}
    port = store.create_port({"network_id": net, "fixed_ips": [want]})
    assert port["fixed_ips"] == [want]
    with pytest.raises(IpAddressAlreadyAllocated):
        store.create_port({"network_id": net, "fixed_ips": [{"ip_address": "2001:db8::abcd"}]})
    for bad, why in [
        ("2001:db8::", "not a valid IP for the specified subnet"),  # subnet-router anycast
        ("2001:db8::1", "gateway"),
        ("2001:db8:5::1", "not a valid IP for any subnet"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("10.0.0.5", "not a valid IP for any subnet"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            store.create_port({"network_id": net, "fixed_ips": [{"ip_address": bad}]})
    assert len(store.list_ports({"network_id": [net]})) == 1


@pytest.mark.parametrize(
    "modes",
    [
        {"ipv6_address_mode": "slaac"},
        {"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"},
        {"ipv6_address_mode": "dhcpv6-stateless"},
        {"ipv6_ra_mode": "dhcpv6-stateless"},
    ],
)
def test_automatic_address_subnets_give_the_eui64_of_the_mac(
    store: Store, net: str, modes: dict[str, str]
) -> None:
    sub = v6(store, net, "2001:db8:1::/64", **modes)
    port = store.create_port({"network_id": net, "mac_address": MAC})
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": EUI64}]
    named = store.create_port(
        {
            "network_id": net,
            "mac_address": "fa:16:3e:aa:bb:cc",
            "fixed_ips": [{"subnet_id": sub["id"]}],
        }
    )
    assert named["fixed_ips"][0]["ip_address"] == eui64("2001:db8:1::/64", "fa:16:3e:aa:bb:cc")
    moved = store.update_port(port["id"], {"mac_address": "fa:16:3e:44:55:66"})
    assert moved["fixed_ips"] == [
        {"subnet_id": sub["id"], "ip_address": eui64("2001:db8:1::/64", "fa:16:3e:44:55:66")}
    ]
    assert moved["status"] == "DOWN"
    with pytest.raises(InvalidInput, match="cannot be directly assigned"):
        store.create_port(
            {
                "network_id": net,
                "mac_address": "fa:16:3e:00:00:99",
                "fixed_ips": [{"ip_address": "2001:db8:1::5"}],
            }
        )
    shown = store.get_port(port["id"])
    # GET adds the lease (none seen): the stored port is otherwise unchanged.
    assert shown.pop("dhcp_lease") is None and shown.pop("dhcp_status_reason")
    assert shown == moved


def test_dual_stack_ports_get_one_address_of_each_family(store: Store, net: str) -> None:
    v4 = store.create_subnet({"network_id": net, "cidr": "10.6.0.0/24"})
    stateful = v6(store, net, "2001:db8::/64")
    slaac = v6(store, net, "2001:db8:1::/64", ipv6_address_mode="slaac")
    port = store.create_port({"network_id": net, "mac_address": MAC})
    got = {f["subnet_id"]: f["ip_address"] for f in port["fixed_ips"]}
    assert got == {v4["id"]: "10.6.0.2", stateful["id"]: "2001:db8::2", slaac["id"]: EUI64}
    # fixed_ips may name either family; the automatic address comes along, as in Neutron
    only_v6 = store.create_port(
        {"network_id": net, "mac_address": "fa:16:3e:00:00:07", "fixed_ips": [
            {"ip_address": "2001:db8::77"}
        ]}
    )  # fmt: skip
    assert {f["ip_address"] for f in only_v6["fixed_ips"]} == {
        "2001:db8::77",
        eui64("2001:db8:1::/64", "fa:16:3e:00:00:07"),
    }
    only_v4 = store.update_port(only_v6["id"], {"fixed_ips": [{"subnet_id": v4["id"]}]})
    assert {f["subnet_id"] for f in only_v4["fixed_ips"]} == {v4["id"], slaac["id"]}
    # The agents are told every address, and each subnet with its modes.
    told = port_state(port)
    assert {f.ip_address for f in told.fixed_ips} == {"10.6.0.2", "2001:db8::2", EUI64}
    modes = {s.id: (s.ip_version, s.ipv6_address_mode) for s in map(subnet_state, [slaac, v4])}
    assert modes == {slaac["id"]: (6, "slaac"), v4["id"]: (4, None)}


def test_availability_counts_a_64_exactly(store: Store, net: str) -> None:
    store.create_subnet({"network_id": net, "cidr": "10.6.0.0/24"})
    v6(store, net, "2001:db8::/64")
    store.create_port({"network_id": net})
    got = store.ip_availability(net)
    per = {s["ip_version"]: s for s in got["subnet_ip_availability"]}
    assert per[6]["total_ips"] == 2**64 - 2 and per[6]["used_ips"] == 1
    assert per[4]["total_ips"] == 253 and per[4]["used_ips"] == 1
    assert got["total_ips"] == 2**64 - 2 + 253
    only6 = store.ip_availabilities({"network_id": [net]}, {6})[0]["subnet_ip_availability"]
    assert [s["ip_version"] for s in only6] == [6]


def test_subnet_update_rules(store: Store, net: str) -> None:
    sub = v6(store, net, "2001:db8:1::/64", ipv6_address_mode="slaac")
    for attrs, why in [
        ({"ipv6_address_mode": "dhcpv6-stateful"}, "read-only attribute ipv6_address_mode"),
        ({"ip_version": 4}, "read-only attribute ip_version"),
        ({"enable_dhcp": False}, "Cannot disable enable_dhcp with ipv6 attributes set"),
        ({"dns_nameservers": ["192.0.2.53"]}, "not an IPv6 address"),
        ({"gateway_ip": "2001:db8:2::1"}, "not a host address"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            store.update_subnet(sub["id"], attrs)
    updated = store.update_subnet(sub["id"], {"dns_nameservers": ["2001:db8::53"]})
    assert updated["dns_nameservers"] == ["2001:db8::53"]
    assert updated["ipv6_address_mode"] == "slaac"


BAD_SUBNETS = [
    ({"cidr": "2001:db8:2::/64", "ip_version": 4}, "does not match ip_version 4"),
    ({"cidr": "10.2.0.0/24", "ip_version": 6}, "does not match ip_version 6"),
    ({"cidr": "2001:db8:2::/48"}, "at least /64"),
    ({"cidr": "2001:db8:2::/127"}, "incompatible with DHCP"),
    ({"cidr": "2001:db8:2::1/64"}, "not a valid CIDR"),
    ({"cidr": "::/64"}, "'::' is not supported"),
    ({"cidr": "fe80::/64"}, "link-local"),
    ({"cidr": "ff00::/64"}, "multicast"),
    ({"cidr": "2001:db8:2::/80", "ipv6_ra_mode": "slaac"}, "requires the prefix to be /64"),
    ({"cidr": "2001:db8:2::/80", "ipv6_address_mode": "dhcpv6-stateless"}, "/64"),
    (
        {"cidr": "2001:db8:2::/64", "ipv6_ra_mode": "slaac",
         "ipv6_address_mode": "dhcpv6-stateful"},
        "they must be the same value",
    ),
    ({"cidr": "2001:db8:2::/64", "ipv6_ra_mode": "router"}, "ipv6_ra_mode"),
    (
        {"cidr": "2001:db8:2::/64", "ipv6_address_mode": "slaac", "enable_dhcp": False},
        "cannot be set when enable_dhcp is set to False",
    ),
    ({"cidr": "10.2.0.0/24", "ip_version": 4, "ipv6_address_mode": "slaac"}, "IPv4 subnet"),
    ({"cidr": "2001:db8:2::/64", "gateway_ip": "10.0.0.1"}, "not an IPv6 address"),
    ({"cidr": "2001:db8:2::/64", "gateway_ip": "2001:db8:3::1"}, "not a host address"),
    ({"cidr": "2001:db8:2::/64", "gateway_ip": "fe80::1"}, "link-local"),
    ({"cidr": "2001:db8:2::/64", "dns_nameservers": ["8.8.8.8"]}, "not an IPv6 address"),
    (
        {"cidr": "2001:db8:2::/64",
         "host_routes": [{"destination": "10.0.0.0/8", "nexthop": "2001:db8:2::9"}]},
        "not an IPv6 prefix",
    ),
    (
        {"cidr": "2001:db8:2::/64", "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.9"}]},
        "not an IPv6 address",
    ),
    (
        {"cidr": "2001:db8:2::/64",
         "allocation_pools": [{"start": "2001:db8:2::", "end": "2001:db8:2::9"}]},
        "spans beyond",
    ),
    ({"cidr": "2001:db8::/64"}, "overlaps"),
    ({"cidr": "2001:db8::/64", "ip_version": 7}, "ip_version"),
]  # fmt: skip


@pytest.mark.parametrize(("attrs", "why"), BAD_SUBNETS)
def test_bad_ipv6_subnets_are_refused_and_change_nothing(
    store: Store, net: str, attrs: dict[str, Any], why: str
) -> None:
    existing = v6(store, net, "2001:db8::/64")
    with pytest.raises(InvalidInput, match=why):
        store.create_subnet({"network_id": net, "ip_version": 6, **attrs})
    assert [s["id"] for s in store.list_subnets({"network_id": [net]})] == [existing["id"]]


def test_the_engines_ipv6_subnet_body_over_the_api(api: TestClient) -> None:
    """oVirt engine's ExternalNetworkProviderProxy body for an IPv6 subnet: no modes."""
    net = api.post(
        "/v2.0/networks", json={"network": {"name": "ovirt net", "tenant_id": "oVirt"}}
    ).json()["network"]
    body = {
        "subnet": {
            "name": "v6 subnet",
            "enable_dhcp": True,
            "network_id": net["id"],
            "tenant_id": "oVirt",
            "dns_nameservers": ["2001:db8::53"],
            "ip_version": 6,
            "gateway_ip": "2001:db8:7::1",
            "cidr": "2001:db8:7::/64",
        }
    }
    r = api.post("/v2.0/subnets", json=body)
    assert r.status_code == 201, r.text
    sub = r.json()["subnet"]
    assert (sub["ip_version"], sub["cidr"], sub["gateway_ip"]) == (
        6,
        "2001:db8:7::/64",
        "2001:db8:7::1",
    )
    assert (sub["ipv6_address_mode"], sub["ipv6_ra_mode"]) == (None, None)
    port = api.post(
        "/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": "oVirt"}}
    )
    assert port.json()["port"]["fixed_ips"] == [
        {"subnet_id": sub["id"], "ip_address": "2001:db8:7::2"}
    ]
    listed = api.get("/v2.0/subnets").json()["subnets"]
    assert [s["cidr"] for s in listed] == ["2001:db8:7::/64"]
    r = api.post(
        "/v2.0/subnets",
        json={"subnet": {**body["subnet"], "cidr": "2001:db8:8::/64", "ipv6_ra_mode": "bogus"}},
    )
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "InvalidInput"
    avail = api.get("/v2.0/network-ip-availabilities", params={"ip_version": 6}).json()
    (one,) = avail["network_ip_availabilities"]
    assert one["total_ips"] == 2**64 - 2  # all but the first address and the gateway
