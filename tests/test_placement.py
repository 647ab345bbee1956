"""The placement rules (ipam.dhcp.placement), on their own."""

from __future__ import annotations

from ipam.dhcp.placement import Host, Network, host_lists, place

NET = Network(id="n1", vdsm_name="vmnet", ha_count=2, dhcp=True)


def hosts(*specs: tuple[str, bool, set[str]]) -> dict[str, Host]:
    return {name: Host(name, frozenset(bridges), live) for name, live, bridges in specs}


THREE = hosts(("h1", True, {"vmnet"}), ("h2", True, {"vmnet"}), ("h3", True, {"vmnet"}))


def test_ha_count_two_on_three_hosts_places_two_and_is_stable() -> None:
    first = place([NET], THREE, {})
    assert len(first["n1"]) == 2
    assert place([NET], THREE, first) == first  # healthy placements do not move


def test_a_dead_host_is_replaced_by_the_third() -> None:
    first = place([NET], THREE, {})
    dead = first["n1"][0]
    now = {k: Host(v.name, v.bridges, v.name != dead) for k, v in THREE.items()}
    moved = place([NET], now, first)
    assert dead not in moved["n1"] and len(moved["n1"]) == 2
    assert first["n1"][1] in moved["n1"]  # the healthy one stays


def test_lowering_the_ha_count_keeps_the_oldest() -> None:
    first = place([NET], THREE, {})
    one = Network("n1", "vmnet", 1, True)
    assert place([one], THREE, first) == {"n1": first["n1"][:1]}


def test_a_host_that_loses_the_bridge_loses_the_placement() -> None:
    first = place([NET], THREE, {})
    lost = first["n1"][0]
    now = {
        k: Host(v.name, frozenset() if v.name == lost else v.bridges, True)
        for k, v in THREE.items()
    }
    assert lost not in place([NET], now, first)["n1"]


def test_new_placements_go_to_the_least_loaded() -> None:
    busy = Network("n0", "vmnet", 1, True)
    current = {"n0": ["h1"]}
    result = place([busy, NET], THREE, current)
    assert result["n0"] == ["h1"] and sorted(result["n1"]) == ["h2", "h3"]


def test_no_dhcp_or_ha_zero_or_nobody_eligible_means_no_server() -> None:
    assert place([Network("n1", "vmnet", 2, False)], THREE, {}) == {}
    assert place([Network("n1", "vmnet", 0, True)], THREE, {}) == {}
    only_one = hosts(("h1", True, {"vmnet"}), ("h2", False, {"vmnet"}), ("h3", True, {"x"}))
    assert place([NET], only_one, {}) == {"n1": ["h1"]}


def test_each_host_gets_its_complete_list() -> None:
    other = Network("n2", "other", 1, True)
    hs = hosts(("h1", True, {"vmnet", "other"}), ("h2", True, {"vmnet"}), ("h3", True, set()))
    lists = host_lists(place([NET, other], hs, {}), [NET, other], hs)
    assert lists["h3"] == []
    assert {"name": "vmnet", "id": "n1"} in lists["h1"] and {"name": "vmnet", "id": "n1"} in lists[
        "h2"
    ]
    assert sum(e["id"] == "n2" for lst in lists.values() for e in lst) == 1


def test_load_by_ports_puts_a_big_network_alone() -> None:
    big, small1, small2 = (
        Network("a", "vmnet", 1, True),
        Network("b", "vmnet", 1, True),
        Network("c", "vmnet", 1, True),
    )
    two = hosts(("h1", True, {"vmnet"}), ("h2", True, {"vmnet"}))
    by_ports = place([big, small1, small2], two, {}, weight={"a": 1000, "b": 1, "c": 1})
    assert by_ports["b"] == by_ports["c"] != by_ports["a"]
    by_networks = place([big, small1, small2], two, {})
    assert by_networks["a"] == by_networks["c"] != by_networks["b"]


def test_a_network_without_a_bridge_is_placed_on_no_host() -> None:
    """vdsm_name None (a free-text name, no provider:physical_network): no host is
    eligible, not even one carrying a bridge of the same (None) name, and a placement
    it had goes."""
    bare = Network("n2", None, 2, True)
    assert place([NET, bare], THREE, {}).get("n2") is None
    assert place([bare], THREE, {"n2": ["h1", "h2"]}) == {}
    lists = host_lists(place([NET, bare], THREE, {}), [NET, bare], THREE)
    assert all(e["id"] == "n1" for entries in lists.values() for e in entries)
