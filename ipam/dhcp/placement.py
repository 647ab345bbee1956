"""Which hosts serve which networks (DESIGN.md, flow 1): a pure function, so the
DHCP manager's decisions can be tested and explained apart from the bus.

Rules: a network with a DHCP-enabled subnet and HA count N is served by up to N
live hosts that carry it (a bridge named after its VDSM name); a network without a
bridge (vdsm_name None) is served by none. Healthy placements
stay where they are; a placement whose host is down or lost the bridge moves;
new placements go to the least-loaded eligible hosts (load: networks served, or
ports on them; ties by name, so the result is deterministic). When N drops, the
newest placements go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Host:
    name: str
    bridges: frozenset[str]
    live: bool


@dataclass(frozen=True)
class Network:
    id: str
    vdsm_name: str | None  # None: no bridge, so no host can serve it
    ha_count: int
    dhcp: bool  # it has a DHCP-enabled subnet (and is administratively up)


def _eligible(host: Host | None, net: Network) -> bool:
    return (
        host is not None
        and host.live
        and net.vdsm_name is not None
        and net.vdsm_name in host.bridges
    )


def place(
    networks: list[Network],
    hosts: Mapping[str, Host],
    current: Mapping[str, list[str]],
    weight: Mapping[str, int] | None = None,
) -> dict[str, list[str]]:
    """network id -> hosts serving it (in placement order), from the current one.

    weight: what a network adds to a host's load (default 1: load is networks
    served; the DHCP manager passes port counts with ``[dhcp] placement_load=ports``).
    """
    weight = weight or {}
    wanted = {n.id: n.ha_count if n.dhcp and n.vdsm_name is not None else 0 for n in networks}
    result: dict[str, list[str]] = {}
    load: Counter[str] = Counter()
    ordered = sorted(networks, key=lambda n: n.id)
    for net in ordered:  # keep what is healthy, oldest first
        keep = [h for h in current.get(net.id, []) if _eligible(hosts.get(h), net)]
        result[net.id] = keep[: wanted[net.id]]
        for name in result[net.id]:
            load[name] += weight.get(net.id, 1)
    for net in ordered:  # fill up with the least loaded
        need = wanted[net.id] - len(result[net.id])
        if need <= 0:
            continue
        candidates = sorted(
            (h.name for h in hosts.values() if _eligible(h, net) and h.name not in result[net.id]),
            key=lambda name: (load[name], name),
        )
        for name in candidates[:need]:
            result[net.id].append(name)
            load[name] += weight.get(net.id, 1)
    return {k: v for k, v in result.items() if v}


def host_lists(
    placement: Mapping[str, list[str]], networks: list[Network], hosts: Mapping[str, Host]
) -> dict[str, list[dict[str, str]]]:
    """What Host.setDHCP must be given on each host: its complete list (maybe empty)."""
    by_id = {n.id: n for n in networks}
    out: dict[str, list[dict[str, str]]] = {name: [] for name in hosts}
    for net_id, names in placement.items():
        vdsm_name = by_id[net_id].vdsm_name
        if vdsm_name is None:  # never placed: place() puts a network only on its bridge
            continue
        for name in names:
            out.setdefault(name, []).append({"name": vdsm_name, "id": net_id})
    return {name: sorted(lst, key=lambda e: e["name"]) for name, lst in out.items()}
