"""Allocation behaviour on both backends (the ``store`` fixture runs each test on
SQLite and on the real PostgreSQL)."""

from __future__ import annotations

import ipaddress

import pytest
import sqlalchemy as sa

from ipam import exceptions
from ipam.db.schema import freed_ips, ip_allocations, subnets
from ipam.store import Store
from tests.conftest import statements_run


def _net(store: Store, cidr: str = "10.1.0.0/29", **subnet) -> tuple[str, str]:
    net = store.create_network({"name": "net1"})
    sub = store.create_subnet({"network_id": net["id"], "cidr": cidr, **subnet})
    return net["id"], sub["id"]


def _ip(port: dict) -> str:
    return port["fixed_ips"][0]["ip_address"]


def test_default_pool_excludes_network_broadcast_and_gateway(store: Store) -> None:
    net, sub = _net(store)
    assert store.get_subnet(sub)["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.6"}]
    ips = [_ip(store.create_port({"network_id": net})) for _ in range(5)]
    assert ips == ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(exceptions.IpAddressGenerationFailure):
        store.create_port({"network_id": net})
    assert len(store.list_ports()) == 5


def test_gateway_in_the_middle_splits_the_pool(store: Store) -> None:
    _, sub = _net(store, "10.1.0.0/28", gateway_ip="10.1.0.7")
    assert store.get_subnet(sub)["allocation_pools"] == [
        {"start": "10.1.0.1", "end": "10.1.0.6"},
        {"start": "10.1.0.8", "end": "10.1.0.14"},
    ]


def test_freed_addresses_are_not_reused_while_fresh_ones_remain(store: Store) -> None:
    net, _ = _net(store, "10.1.0.0/28")
    first = store.create_port({"network_id": net})
    store.create_port({"network_id": net})
    store.delete_port(first["id"])
    assert _ip(store.create_port({"network_id": net})) == "10.1.0.4"


def test_freed_addresses_come_back_last_oldest_first(store: Store) -> None:
    net, _ = _net(store)  # pool .2-.6
    ports = [store.create_port({"network_id": net}) for _ in range(5)]
    store.delete_port(ports[3]["id"])  # .5 freed first
    store.delete_port(ports[1]["id"])  # .3 freed second
    assert _ip(store.create_port({"network_id": net})) == "10.1.0.5"
    assert _ip(store.create_port({"network_id": net})) == "10.1.0.3"
    with pytest.raises(exceptions.IpAddressGenerationFailure):
        store.create_port({"network_id": net})


def test_explicit_ip_ahead_of_the_cursor_is_skipped(store: Store) -> None:
    net, _ = _net(store)
    taken = store.create_port({"network_id": net, "fixed_ips": [{"ip_address": "10.1.0.3"}]})
    assert _ip(taken) == "10.1.0.3"
    ips = [_ip(store.create_port({"network_id": net})) for _ in range(4)]
    assert ips == ["10.1.0.2", "10.1.0.4", "10.1.0.5", "10.1.0.6"]


def test_explicit_reuse_of_a_freed_ip_removes_it_from_the_freed_list(store: Store) -> None:
    net, sub = _net(store)
    port = store.create_port({"network_id": net})
    store.delete_port(port["id"])
    again = store.create_port({"network_id": net, "fixed_ips": [{"ip_address": _ip(port)}]})
    assert _ip(again) == _ip(port)
    with store.db.read() as conn:
        assert conn.execute(sa.select(freed_ips).where(freed_ips.c.subnet_id == sub)).all() == []


def test_auto_allocation_moves_to_the_next_subnet_when_one_is_full(store: Store) -> None:
    net, first = _net(store, "10.1.0.0/30")  # one address: .2
    second = store.create_subnet({"network_id": net, "cidr": "10.2.0.0/24"})
    a, b = store.create_port({"network_id": net}), store.create_port({"network_id": net})
    assert a["fixed_ips"] == [{"subnet_id": first, "ip_address": "10.1.0.2"}]
    assert b["fixed_ips"] == [{"subnet_id": second["id"], "ip_address": "10.2.0.2"}]


def test_port_update_changes_ip_and_frees_the_old_one(store: Store) -> None:
    net, sub = _net(store, "10.1.0.0/24")
    port = store.create_port({"network_id": net})
    updated = store.update_port(port["id"], {"fixed_ips": [{"ip_address": "10.1.0.100"}]})
    assert updated["fixed_ips"] == [{"subnet_id": sub, "ip_address": "10.1.0.100"}]
    assert updated["revision_number"] == port["revision_number"] + 1
    with store.db.read() as conn:
        freed = conn.execute(sa.select(freed_ips.c.ip)).scalars().all()
    assert freed == [int(ipaddress.IPv4Address(_ip(port)))]
    same = store.update_port(port["id"], {"fixed_ips": [{"ip_address": "10.1.0.100"}]})
    assert same["fixed_ips"] == updated["fixed_ips"]


def test_new_pools_restart_the_cursor_and_skip_taken_addresses(store: Store) -> None:
    net, sub = _net(store, "10.1.0.0/24")
    for _ in range(3):
        store.create_port({"network_id": net})  # .2 .3 .4
    store.update_subnet(sub, {"allocation_pools": [{"start": "10.1.0.3", "end": "10.1.0.6"}]})
    assert [_ip(store.create_port({"network_id": net})) for _ in range(2)] == [
        "10.1.0.5",
        "10.1.0.6",
    ]


def test_generated_macs_use_the_base_prefix_and_are_unique(store: Store) -> None:
    net, _ = _net(store, "10.1.0.0/24")
    macs = {store.create_port({"network_id": net})["mac_address"] for _ in range(50)}
    assert len(macs) == 50
    assert all(m.startswith("fa:16:3e:") for m in macs)


def test_same_mac_on_two_networks_is_allowed_but_not_twice_on_one(store: Store) -> None:
    net_a, _ = _net(store, "10.1.0.0/24")
    net_b = store.create_network({"name": "net2"})["id"]
    store.create_port({"network_id": net_a, "mac_address": "52:54:00:AA:BB:CC"})
    port_b = store.create_port({"network_id": net_b, "mac_address": "52:54:00:aa:bb:cc"})
    assert port_b["mac_address"] == "52:54:00:aa:bb:cc"
    with pytest.raises(exceptions.MacAddressInUse):
        store.create_port({"network_id": net_a, "mac_address": "52:54:00:aa:bb:cc"})


def test_one_allocation_costs_the_same_statements_in_an_empty_and_a_full_16(store: Store) -> None:
    """No scan: the statements an allocation runs do not grow with the used addresses."""
    net = store.create_network({"name": "big"})["id"]
    store.create_subnet({"network_id": net, "cidr": "10.8.0.0/16"})
    net2 = store.create_network({"name": "big2"})["id"]
    full = store.create_subnet({"network_id": net2, "cidr": "10.9.0.0/16"})["id"]
    _fill(store, full, net2, 0.9)

    def statements(net_id: str) -> int:
        return statements_run(store, lambda: store.create_port({"network_id": net_id}))

    store.create_port({"network_id": net})  # warm caches on both
    store.create_port({"network_id": net2})
    assert statements(net2) == statements(net) == statements(net2)
    assert (
        store.ip_availability(net2)["used_ips"] == int(0.9 * 65533) + 3
    )  # warm-up and two measured


def _fill(store: Store, subnet_id: str, net_id: str, fraction: float) -> None:
    """Mark a fraction of the subnet used, quickly, as many ports would."""
    with store.db.engine.begin() as conn:
        row = conn.execute(sa.select(subnets).where(subnets.c.id == subnet_id)).one()
        used = int(row.pool_size * fraction)
        from ipam.db.schema import ports

        conn.execute(
            sa.insert(ports),
            [
                {
                    "id": f"fill-{i}",
                    "network_id": net_id,
                    "mac_address": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                    "status": "DOWN",
                    "admin_state_up": True,
                    "extra": {},
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                }
                for i in range(1)
            ],
        )
        base = int(ipaddress.IPv4Network(row.cidr).network_address) + 2
        conn.execute(
            sa.insert(ip_allocations),
            [{"subnet_id": subnet_id, "ip": base + i, "port_id": "fill-0"} for i in range(used)],
        )
        conn.execute(sa.update(subnets).where(subnets.c.id == subnet_id).values(fresh_cursor=used))


def test_vdsm_name_defaults_to_a_valid_name_and_is_none_otherwise(store: Store) -> None:
    """oVirt network names are free (the engine never sends vdsm_name): a name that is
    no bridge name gives a network without a bridge, which no host serves."""
    assert store.create_network({"name": "ovirtmgmt"})["vdsm_name"] == "ovirtmgmt"
    assert store.create_network({"name": "VM network with spaces"})["vdsm_name"] is None
    with pytest.raises(exceptions.InvalidInput):
        store.create_network({"name": "x", "vdsm_name": "not a bridge name"})
    net = store.create_network({"name": "VM network with spaces", "vdsm_name": "vmnet1"})
    assert (net["name"], net["vdsm_name"], net["ha_count"]) == (
        "VM network with spaces",
        "vmnet1",
        1,
    )
    assert store.create_network({"name": "nodhcp", "ha_count": 0})["ha_count"] == 0


def test_network_delete_takes_its_dhcp_ports_and_subnets_along(store: Store) -> None:
    net, sub = _net(store, "10.1.0.0/24")
    store.create_port({"network_id": net, "device_owner": "network:dhcp"})
    store.delete_network(net)
    assert store.list_ports() == [] and store.list_subnets() == []
    with pytest.raises(exceptions.SubnetNotFound):
        store.get_subnet(sub)


def test_availability_counts_pool_size_and_used(store: Store) -> None:
    net, sub = _net(store, "10.1.0.0/24")
    for _ in range(7):
        store.create_port({"network_id": net})
    avail = store.ip_availability(net)
    assert (avail["total_ips"], avail["used_ips"]) == (253, 7)
    assert avail["subnet_ip_availability"][0]["subnet_id"] == sub


def test_port_counts_per_network(store: Store) -> None:
    net, _ = _net(store, "10.1.0.0/24")
    other = store.create_network({"name": "net2"})["id"]
    for _ in range(3):
        store.create_port({"network_id": net})
    store.create_port({"network_id": other})
    assert store.port_counts() == {net: 3, other: 1}


def test_networks_with_dhcp_subnets(store: Store) -> None:
    """What readiness asks before waiting: which networks have a DHCP-enabled subnet."""
    nets = [store.create_network({"name": f"d{i}"})["id"] for i in range(3)]
    store.create_subnet({"network_id": nets[0], "cidr": "10.40.0.0/24"})
    store.create_subnet({"network_id": nets[1], "cidr": "10.41.0.0/24", "enable_dhcp": False})
    assert store.networks_with_dhcp_subnets(nets) == {nets[0]}
    store.create_subnet({"network_id": nets[1], "cidr": "10.42.0.0/24"})
    assert store.networks_with_dhcp_subnets(nets[1:]) == {nets[1]}
    assert store.networks_with_dhcp_subnets([]) == set()
