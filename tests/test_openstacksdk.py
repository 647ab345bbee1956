"""openstacksdk against a real ``ovirt-ipam engine`` process (token auth).

Two ways in: the static token handed to keystoneauth's ``admin_token`` plugin with
the network endpoint overridden, and Keystone v3 password auth against the
engine's own ``/v3`` (whose catalog names the engine as the network service).
Then networks, subnets and ports through ``conn.network``, as an administrator
script or another OpenStack tool would use them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

import keystoneauth1.exceptions
import openstack.connection
import openstack.exceptions
import pytest

from ipam.lab.harness import EngineProcess

# The SDK warns about its own deprecations on every call; they are not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),  # RemovedInSDK*Warning
]

TOKEN = "s3cret"
PASSWORD = "pw"
# extra_conf is appended inside [api], right after bind_port (harness.write_engine_conf).
TOKEN_CONF = f"auth_strategy = token\nauth_token = {TOKEN}\nauth_password = {PASSWORD}\n"


@pytest.fixture
def engine(engine_factory: Callable[..., EngineProcess]) -> EngineProcess:
    return engine_factory(TOKEN_CONF)


def token_connection(url: str, token: str = TOKEN) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="admin_token",
        auth={"endpoint": url, "token": token},
        network_endpoint_override=url,
    )


def password_connection(url: str, password: str) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="password",
        auth={
            "auth_url": url + "/v3",
            "username": "admin",
            "password": password,
            "project_name": "Default",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
    )


@pytest.fixture
def conn(engine: EngineProcess) -> Iterator[openstack.connection.Connection]:
    connection = token_connection(engine.url)
    yield connection
    connection.close()


@pytest.fixture
def net(conn: openstack.connection.Connection) -> object:
    return conn.network.create_network(name="sdknet", mtu=1400)


@pytest.fixture
def subnet(conn: openstack.connection.Connection, net: object) -> object:
    return conn.network.create_subnet(
        network_id=net.id,
        name="sdksub",
        ip_version=4,
        cidr="10.20.0.0/24",
        gateway_ip="10.20.0.1",
        allocation_pools=[{"start": "10.20.0.100", "end": "10.20.0.199"}],
        dns_nameservers=["10.20.0.2", "192.0.2.53"],
        host_routes=[{"destination": "192.0.2.0/24", "nexthop": "10.20.0.254"}],
    )


# auth


def test_admin_token_plugin_reaches_the_api_and_a_wrong_token_is_refused(engine):
    good = token_connection(engine.url)
    created = good.network.create_network(name="tok")
    assert [n.id for n in good.network.networks()] == [created.id]

    bad = token_connection(engine.url, token="wrong")
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(bad.network.networks())
    assert err.value.status_code == 401
    assert "X-Auth-Token" in str(err.value)


def test_noauth_engine_needs_no_credentials(engine_factory):
    engine = engine_factory()  # default auth_strategy = noauth, loopback only
    conn = openstack.connection.Connection(
        auth_type="none", auth={"endpoint": engine.url}, network_endpoint_override=engine.url
    )
    created = conn.network.create_network(name="open")
    assert [n.id for n in conn.network.networks(name="open")] == [created.id]


def test_keystone_v3_password_auth_uses_the_engine_catalog(engine):
    conn = password_connection(engine.url, PASSWORD)
    assert conn.session.get_token() == TOKEN
    # No endpoint override: the network endpoint comes from the /v3 token's catalog.
    assert conn.network.get_endpoint().rstrip("/").startswith(engine.url)
    created = conn.network.create_network(name="viapw")
    assert conn.network.get_network(created.id).name == "viapw"
    assert conn.current_project_id == "ovirt"


def test_keystone_v3_wrong_password_is_unauthorized(engine):
    conn = password_connection(engine.url, "not-" + PASSWORD)
    with pytest.raises(keystoneauth1.exceptions.Unauthorized) as err:
        list(conn.network.networks())
    assert err.value.http_status == 401


# networks


def test_network_create_list_get_update_delete(conn):
    a = conn.network.create_network(name="net-a", mtu=1400, description="first")
    b = conn.network.create_network(name="net-b", is_admin_state_up=False)
    assert (a.name, a.mtu, a.description, a.is_admin_state_up) == ("net-a", 1400, "first", True)
    assert (b.mtu, b.is_admin_state_up) == (1500, False)
    assert a.status == "ACTIVE" and a.subnet_ids == []

    assert {n.name for n in conn.network.networks()} == {"net-a", "net-b"}
    assert [n.id for n in conn.network.networks(name="net-b")] == [b.id]
    assert list(conn.network.networks(name="nope")) == []
    assert [n.id for n in conn.network.networks(id=a.id)] == [a.id]

    got = conn.network.get_network(a.id)
    assert (got.id, got.name, got.mtu) == (a.id, "net-a", 1400)

    revision = a.revision_number  # update_network updates the object it is given
    updated = conn.network.update_network(a.id, name="net-a2", mtu=9000, description="")
    assert (updated.name, updated.mtu, updated.description) == ("net-a2", 9000, "")
    assert updated.revision_number == revision + 1
    assert conn.network.get_network(a.id).name == "net-a2"

    conn.network.delete_network(a)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.get_network(a.id)
    assert [n.id for n in conn.network.networks()] == [b.id]
    conn.network.delete_network(b)
    assert list(conn.network.networks()) == []


def test_networks_carrying_a_dhcp_lease_time(conn):
    """The extra network attribute passes through the SDK both ways and disturbs nothing."""
    leased = conn.network.create_network(name="leased", dhcp_lease_time=600)
    plain = conn.network.create_network(name="plain")
    assert (leased.name, leased.mtu, leased.status) == ("leased", 1500, "ACTIVE")
    assert leased.to_dict()["dhcp_lease_time"] == 600
    got = conn.network.get_network(leased.id)
    assert got.to_dict()["dhcp_lease_time"] == 600 and got.name == "leased"
    listed = {n.name: n.to_dict()["dhcp_lease_time"] for n in conn.network.networks()}
    assert listed == {"leased": 600, "plain": None}
    assert conn.network.find_network("leased").id == leased.id

    revision = leased.revision_number
    updated = conn.network.update_network(leased.id, dhcp_lease_time=-1, name="leased2")
    assert (updated.name, updated.to_dict()["dhcp_lease_time"]) == ("leased2", -1)
    assert updated.revision_number == revision + 1
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        conn.network.update_network(plain.id, dhcp_lease_time=60)
    assert "dhcp_lease_time" in str(err.value)
    assert conn.network.get_network(plain.id).to_dict()["dhcp_lease_time"] is None


def test_network_listing_follows_pagination_links(conn):
    created = [conn.network.create_network(name=f"page{i}").id for i in range(5)]
    assert [n.id for n in conn.network.networks(limit=2)] == created
    assert [n.id for n in conn.network.networks(limit=2, name="page3")] == [created[3]]


def test_sorted_listing_pages_in_sort_order(conn):
    """sort_key/sort_dir are honoured, also across the pages the SDK follows."""
    mtus = {"c": 1400, "a": 9000, "d": 1400, "b": 1500, "e": 9000}
    made = {conn.network.create_network(name=n, mtu=m).name for n, m in mtus.items()}
    names = [n.name for n in conn.network.networks(sort_key="name", sort_dir="desc", limit=2)]
    assert names == sorted(made, reverse=True)
    by_mtu = conn.network.networks(sort_key=["mtu", "name"], sort_dir=["desc", "asc"])
    assert [n.name for n in by_mtu] == ["a", "e", "b", "c", "d"]


def test_find_network_by_name_and_id(conn, net):
    assert conn.network.find_network("sdknet").id == net.id
    assert conn.network.find_network(net.id).name == "sdknet"
    assert conn.network.find_network("missing") is None
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.find_network("missing", ignore_missing=False)


# subnets


def test_subnet_create_with_pools_dns_routes_and_gateway(conn, net, subnet):
    assert subnet.network_id == net.id
    assert (subnet.cidr, subnet.gateway_ip, subnet.ip_version) == ("10.20.0.0/24", "10.20.0.1", 4)
    assert subnet.allocation_pools == [{"start": "10.20.0.100", "end": "10.20.0.199"}]
    assert subnet.dns_nameservers == ["10.20.0.2", "192.0.2.53"]
    assert subnet.host_routes == [{"destination": "192.0.2.0/24", "nexthop": "10.20.0.254"}]
    assert subnet.is_dhcp_enabled is True
    assert conn.network.get_network(net.id).subnet_ids == [subnet.id]


def test_subnet_default_pools_skip_the_gateway(conn, net):
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.30.0.0/29")
    assert sub.gateway_ip == "10.30.0.1"
    assert sub.allocation_pools == [{"start": "10.30.0.2", "end": "10.30.0.6"}]


def test_ipv6_subnets_with_modes_and_dual_stack_ports(conn, net, subnet):
    """openstacksdk creates and lists IPv6 subnets with Neutron's modes; a port on the
    dual-stack network gets an IPv4, a stateful IPv6 and its SLAAC address."""
    stateful = conn.network.create_subnet(
        network_id=net.id,
        ip_version=6,
        cidr="2001:db8:20::/64",
        ipv6_address_mode="dhcpv6-stateful",
        ipv6_ra_mode="dhcpv6-stateful",
        dns_nameservers=["2001:db8:20::53"],
    )
    slaac = conn.network.create_subnet(
        network_id=net.id, ip_version=6, cidr="2001:db8:21::/64", ipv6_address_mode="slaac"
    )
    assert (stateful.ip_version, stateful.gateway_ip) == (6, "2001:db8:20::1")
    assert (stateful.ipv6_address_mode, stateful.ipv6_ra_mode) == ("dhcpv6-stateful",) * 2
    assert (slaac.ipv6_address_mode, slaac.ipv6_ra_mode) == ("slaac", None)
    listed = {s.id: s for s in conn.network.subnets(network_id=net.id, ip_version=6)}
    assert set(listed) == {stateful.id, slaac.id}
    assert listed[slaac.id].ipv6_address_mode == "slaac"
    port = conn.network.create_port(network_id=net.id, mac_address="fa:16:3e:20:00:01")
    got = {f["subnet_id"]: f["ip_address"] for f in port.fixed_ips}
    assert got == {
        subnet.id: "10.20.0.100",
        stateful.id: "2001:db8:20::2",
        slaac.id: "2001:db8:21:0:f816:3eff:fe20:1",
    }
    with pytest.raises(openstack.exceptions.BadRequestException, match="/64"):
        conn.network.create_subnet(
            network_id=net.id, ip_version=6, cidr="2001:db8:22::/80", ipv6_ra_mode="slaac"
        )


def test_subnet_list_get_update_delete(conn, net, subnet):
    other_net = conn.network.create_network(name="other")
    other = conn.network.create_subnet(
        network_id=other_net.id, ip_version=4, cidr="10.21.0.0/24", name="othersub"
    )
    assert {s.id for s in conn.network.subnets()} == {subnet.id, other.id}
    assert [s.id for s in conn.network.subnets(network_id=net.id)] == [subnet.id]
    assert [s.id for s in conn.network.subnets(name="othersub")] == [other.id]

    got = conn.network.get_subnet(subnet.id)
    assert (got.name, got.cidr) == ("sdksub", "10.20.0.0/24")

    updated = conn.network.update_subnet(
        subnet,
        name="renamed",
        dns_nameservers=["10.20.0.3"],
        allocation_pools=[{"start": "10.20.0.50", "end": "10.20.0.60"}],
        host_routes=[],
    )
    assert updated.name == "renamed"
    assert updated.dns_nameservers == ["10.20.0.3"]
    assert updated.allocation_pools == [{"start": "10.20.0.50", "end": "10.20.0.60"}]
    assert updated.host_routes == []
    assert updated.cidr == "10.20.0.0/24"
    port = conn.network.create_port(network_id=net.id)
    assert 50 <= int(port.fixed_ips[0]["ip_address"].rsplit(".", 1)[1]) <= 60

    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.delete_subnet(subnet)  # the port holds an address of it
    conn.network.delete_port(port)
    conn.network.delete_subnet(subnet)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.get_subnet(subnet.id)
    assert [s.id for s in conn.network.subnets()] == [other.id]
    assert conn.network.get_network(net.id).subnet_ids == []


def test_subnet_bad_input_is_a_bad_request(conn, net, subnet):
    with pytest.raises(openstack.exceptions.BadRequestException) as err:
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.20.0.128/25")
    assert "overlaps" in str(err.value)
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_subnet(
            network_id=net.id,
            ip_version=4,
            cidr="10.22.0.0/24",
            allocation_pools=[{"start": "10.23.0.10", "end": "10.23.0.20"}],
        )
    assert [s.id for s in conn.network.subnets()] == [subnet.id]


# ports


def test_port_create_with_fixed_ips_by_subnet_and_by_ip(conn, net, subnet):
    mac = "52:54:00:12:34:56"
    by_subnet = conn.network.create_port(
        network_id=net.id,
        name="vnic0",
        mac_address=mac,
        fixed_ips=[{"subnet_id": subnet.id}],
        device_id="vm-1",
        device_owner="oVirt",
        binding_host_id="host-1",
        is_port_security_enabled=False,
        security_group_ids=[],
    )
    assert by_subnet.mac_address == mac
    assert by_subnet.is_port_security_enabled is False
    assert by_subnet.security_group_ids == []
    assert (by_subnet.device_id, by_subnet.device_owner) == ("vm-1", "oVirt")
    assert by_subnet.binding_host_id == "host-1"
    [fixed] = by_subnet.fixed_ips
    assert fixed["subnet_id"] == subnet.id
    ip = ipaddress.IPv4Address(fixed["ip_address"])
    assert ip in ipaddress.IPv4Network(subnet.cidr)
    assert ipaddress.IPv4Address("10.20.0.100") <= ip <= ipaddress.IPv4Address("10.20.0.199")

    explicit = conn.network.create_port(
        network_id=net.id, fixed_ips=[{"ip_address": "10.20.0.7"}], device_id="vm-2"
    )
    assert explicit.fixed_ips == [{"subnet_id": subnet.id, "ip_address": "10.20.0.7"}]
    assert explicit.mac_address != mac
    assert explicit.mac_address.startswith("fa:16:3e:")

    both = conn.network.create_port(
        network_id=net.id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.20.0.8"}]
    )
    assert both.fixed_ips == [{"subnet_id": subnet.id, "ip_address": "10.20.0.8"}]

    with pytest.raises(openstack.exceptions.ConflictException) as err:
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.20.0.7"}])
    assert "already allocated" in str(err.value)
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.create_port(network_id=net.id, mac_address=mac)
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.99.0.7"}])
    assert len(list(conn.network.ports())) == 3


def test_port_list_filters(conn, net, subnet):
    other_net = conn.network.create_network(name="other")
    p1 = conn.network.create_port(
        network_id=net.id, device_id="vm-1", device_owner="oVirt", mac_address="52:54:00:00:00:01"
    )
    p2 = conn.network.create_port(network_id=net.id, device_id="vm-2", device_owner="oVirt")
    p3 = conn.network.create_port(
        network_id=other_net.id, device_id="vm-1", device_owner="compute:nova"
    )

    def ids(**filters: str) -> set[str]:
        return {p.id for p in conn.network.ports(**filters)}

    assert ids() == {p1.id, p2.id, p3.id}
    assert ids(network_id=net.id) == {p1.id, p2.id}
    assert ids(network_id=other_net.id) == {p3.id}
    assert ids(device_id="vm-1") == {p1.id, p3.id}
    assert ids(device_owner="oVirt") == {p1.id, p2.id}
    assert ids(device_owner="oVirt", device_id="vm-1") == {p1.id}
    assert ids(mac_address="52:54:00:00:00:01") == {p1.id}
    assert ids(mac_address="52:54:00:00:00:02") == set()
    assert ids(network_id=other_net.id, device_owner="oVirt") == set()
    ip1 = p1.fixed_ips[0]["ip_address"]
    assert ids(fixed_ips=f"ip_address={ip1}") == {p1.id}
    assert ids(fixed_ips=f"subnet_id={subnet.id}") == {p1.id, p2.id}
    # A port without a subnet on its network has no address.
    assert conn.network.get_port(p3.id).fixed_ips == []


def test_port_get_update_delete(conn, net, subnet):
    port = conn.network.create_port(
        network_id=net.id, name="p", fixed_ips=[{"ip_address": "10.20.0.10"}]
    )
    got = conn.network.get_port(port.id)
    assert (got.name, got.network_id, got.mac_address) == ("p", net.id, port.mac_address)
    assert got.status == "DOWN"

    updated = conn.network.update_port(
        port,
        name="p2",
        mac_address="52:54:00:aa:bb:cc",
        binding_host_id="host-9",
        fixed_ips=[{"ip_address": "10.20.0.11"}],
    )
    assert updated.name == "p2"
    assert updated.mac_address == "52:54:00:aa:bb:cc"
    assert updated.binding_host_id == "host-9"
    assert updated.fixed_ips == [{"subnet_id": subnet.id, "ip_address": "10.20.0.11"}]
    assert conn.network.get_port(port.id).mac_address == "52:54:00:aa:bb:cc"

    # The old address is free again for an explicit request.
    again = conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.20.0.10"}])
    assert again.fixed_ips[0]["ip_address"] == "10.20.0.10"

    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.delete_network(net)  # ports still use it
    conn.network.delete_port(port)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.get_port(port.id)
    assert [p.id for p in conn.network.ports()] == [again.id]
    conn.network.delete_port(again)
    assert list(conn.network.ports()) == []
    conn.network.delete_network(net)
    assert list(conn.network.networks()) == []
    assert list(conn.network.subnets()) == []


def test_port_names_domains_and_dhcp_options(conn, net, subnet):
    """dns_name, dns_assignment, extra_dhcp_opts and a network's dns_domain as the SDK
    sets and reads them (issue 16)."""
    updated_net = conn.network.update_network(net, dns_domain="Lab.Example.")
    assert updated_net.dns_domain == "lab.example."
    port = conn.network.create_port(
        network_id=net.id,
        dns_name="VM-1",
        extra_dhcp_opts=[
            {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
            {"opt_name": "66", "opt_value": "10.20.0.5"},
        ],
    )
    assert port.dns_name == "vm-1"
    [address] = [f["ip_address"] for f in port.fixed_ips]
    assert port.dns_assignment == [
        {"hostname": "vm-1", "ip_address": address, "fqdn": "vm-1.lab.example."}
    ]
    assert port.extra_dhcp_opts == [
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
        {"opt_name": "tftp-server", "opt_value": "10.20.0.5", "ip_version": 4},
    ]
    revision = port.revision_number
    changed = conn.network.update_port(
        port,
        dns_name="vm-2",
        extra_dhcp_opts=[{"opt_name": "tftp-server", "opt_value": None, "ip_version": 4}],
    )
    assert changed.revision_number == revision + 1 and changed.status == "DOWN"
    got = conn.network.get_port(port.id)
    assert (got.dns_name, got.dns_assignment[0]["fqdn"]) == ("vm-2", "vm-2.lab.example.")
    assert got.extra_dhcp_opts == [
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4}
    ]
    assert [p.id for p in conn.network.ports(dns_name="vm-2")] == [port.id]
    for bad in (
        {"dns_name": "vm_2"},
        {"dns_name": "vm-2"},  # taken on this network
        {"extra_dhcp_opts": [{"opt_name": "dhcp-script", "opt_value": "/bin/sh"}]},
        {"extra_dhcp_opts": [{"opt_name": "server-ip-address", "opt_value": "tftp.lab"}]},
    ):
        with pytest.raises(openstack.exceptions.BadRequestException):
            conn.network.create_port(network_id=net.id, **bad)
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.update_network(net, dns_domain="example.org")
    assert conn.network.get_network(net.id).dns_domain == "lab.example."
    assert [p.id for p in conn.network.ports()] == [port.id]


# read-only extras


def test_network_ip_availability(conn, net, subnet):
    for _ in range(3):
        conn.network.create_port(network_id=net.id)
    avail = conn.network.get_network_ip_availability(net.id)
    assert avail.network_id == net.id
    assert avail.network_name == "sdknet"
    assert (avail.total_ips, avail.used_ips) == (100, 3)
    [per_subnet] = avail.subnet_ip_availability
    assert per_subnet["subnet_id"] == subnet.id
    assert (per_subnet["total_ips"], per_subnet["used_ips"]) == (100, 3)

    empty = conn.network.create_network(name="empty")
    listed = {a.network_id: a for a in conn.network.network_ip_availabilities()}
    assert set(listed) == {net.id, empty.id}
    only = list(conn.network.network_ip_availabilities(network_id=net.id))
    assert [a.used_ips for a in only] == [3]
    assert (listed[empty.id].total_ips, listed[empty.id].used_ips) == (0, 0)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.network.get_network_ip_availability("00000000-0000-0000-0000-000000000000")


def test_extensions(conn):
    aliases = {e.alias for e in conn.network.extensions()}
    assert {"binding", "network-ip-availability", "net-mtu", "ovirt-dhcp"} <= aliases
    assert {"dns-integration", "extra_dhcp_opt"} <= aliases
    assert "dns-domain-ports" not in aliases  # a port's own dns_domain is not offered
    binding = conn.network.find_extension("binding")
    assert (binding.alias, binding.name) == ("binding", "Port Binding")
    assert conn.network.find_extension("no-such-extension") is None
