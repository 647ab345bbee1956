"""DHCP agents in the store: their subscriptions and heartbeats, their DHCP ports,
their readiness acknowledgements, and the state of a network as a sync sends it.

The bus server (ipam.dhcp.bus_server) calls these through ipam.store.Store, one
transaction per call, like every other change of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam.bus.contracts import DHCP_OWNER
from ipam.db.schema import dhcp_agents, ip_allocations, port_acks
from ipam.db.schema import ports as ports_table
from ipam.db.schema import subnets as subnets_table
from ipam.store import allocation, networks, ports, subnets
from ipam.store.dns import DnsDefaults

STATUS_ACTIVE = "ACTIVE"
_CHUNK = 500


def dhcp_device_id(host: str) -> str:
    """The device_id (and name) of host's DHCP port (device_owner DHCP_OWNER) on a network."""
    return f"dhcp-{host}"


# -- subscriptions and heartbeats ------------------------------------------------------


def _agent_row(conn: Connection, host: str) -> Row | None:
    query = sa.select(dhcp_agents).where(dhcp_agents.c.host == host)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def _save(conn: Connection, row: Row | None, host: str, values: dict[str, Any]) -> None:
    if row is None:
        values.setdefault("networks", [])
        conn.execute(sa.insert(dhcp_agents).values(host=host, **values))
    else:
        conn.execute(sa.update(dhcp_agents).where(dhcp_agents.c.host == host).values(**values))


def subscribe(conn: Connection, host: str, net_ids: list[str], now: float) -> list[str]:
    """Add net_ids to the networks host is subscribed to; returns the new list."""
    row = _agent_row(conn, host)
    current = list(row.networks) if row is not None else []
    served = current + [n for n in dict.fromkeys(net_ids) if n not in current]
    _save(conn, row, host, {"networks": served, "last_seen": now})
    return served


def heartbeat(
    conn: Connection,
    host: str,
    served: list[str],
    status: dict[str, Any],
    started_at: float,
    now: float,
) -> bool:
    """Record a heartbeat: the networks it lists become the host's subscription.
    Returns whether the subscription changed (most heartbeats change nothing)."""
    row = _agent_row(conn, host)
    networks = list(dict.fromkeys(served))
    _save(
        conn,
        row,
        host,
        {
            "networks": networks,
            "status": status,
            "started_at": started_at,
            "last_seen": now,
        },
    )
    return row is None or list(row.networks or []) != networks


def release(
    conn: Connection, host: str, net_id: str, now: float | None, dns: DnsDefaults
) -> list[dict[str, Any]]:
    """Unsubscribe host from net_id and delete its DHCP port(s) there; returns them.
    ``now``: the agent itself released it (it was seen now); None: the DHCP manager
    did, for a host that is gone (its last heartbeat stays what it was)."""
    row = _agent_row(conn, host)
    if row is not None:
        served = [n for n in row.networks if n != net_id]
        values: dict[str, Any] = {"networks": served}
        if now is not None:
            values["last_seen"] = now
        _save(conn, row, host, values)
    gone = []
    for port_row in _dhcp_port_rows(conn, net_id, host):
        gone.append(ports.delete(conn, port_row.id, dns))
    return gone


def list_agents(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(dhcp_agents).order_by(dhcp_agents.c.host)).all()
    return [
        {
            "host": r.host,
            "networks": list(r.networks),
            "status": r.status,
            "started_at": r.started_at,
            "last_seen": r.last_seen,
        }
        for r in rows
    ]


def subscriptions(conn: Connection) -> dict[str, list[str]]:
    """network id -> hosts subscribed to it."""
    out: dict[str, list[str]] = {}
    for r in conn.execute(sa.select(dhcp_agents.c.host, dhcp_agents.c.networks)):
        for net_id in r.networks or []:
            out.setdefault(net_id, []).append(r.host)
    return out


# -- DHCP ports --------------------------------------------------------------------------


def dhcp_port_networks(conn: Connection, host: str) -> list[str]:
    """The networks on which host has a DHCP port."""
    query = (
        sa.select(ports_table.c.network_id)
        .where(
            ports_table.c.device_owner == DHCP_OWNER,
            ports_table.c.host_id == host,
            ports_table.c.device_id == dhcp_device_id(host),
        )
        .distinct()
    )
    return sorted(conn.execute(query).scalars())


def _dhcp_port_rows(conn: Connection, net_id: str, host: str) -> Sequence[Row]:
    return conn.execute(
        sa.select(ports_table.c.id)
        .where(
            ports_table.c.network_id == net_id,
            ports_table.c.device_owner == DHCP_OWNER,
            ports_table.c.host_id == host,
            ports_table.c.device_id == dhcp_device_id(host),
        )
        .order_by(ports_table.c.created_at, ports_table.c.id)
    ).all()


def ensure_dhcp_port(
    conn: Connection, net_id: str, host: str, mac_prefix: str, dns: DnsDefaults
) -> tuple[dict[str, Any] | None, bool]:
    """The DHCP port of host on net_id with one IP on each DHCP-enabled subnet.

    Created, or its fixed IPs brought in line, when needed; (None, False) when the
    network has no DHCP-enabled subnet. Returns (port, changed).
    """
    networks.get_row(conn, net_id, lock=True)  # serialises the DHCP ports of a network
    dhcp_subnets = list(
        conn.execute(
            sa.select(subnets_table.c.id)
            .where(subnets_table.c.network_id == net_id, subnets_table.c.enable_dhcp)
            .order_by(subnets_table.c.created_at, subnets_table.c.id)
        ).scalars()
    )
    existing = _dhcp_port_rows(conn, net_id, host)
    if not dhcp_subnets:
        return None, False
    if not existing:
        port = ports.create(
            conn,
            {
                "network_id": net_id,
                "name": dhcp_device_id(host),
                "device_owner": DHCP_OWNER,
                "device_id": dhcp_device_id(host),
                "binding:host_id": host,
                "fixed_ips": [{"subnet_id": s} for s in dhcp_subnets],
            },
            mac_prefix,
            dns,
        )
        return port, True
    port = ports.show(conn, existing[0].id, dns)
    have = [f["subnet_id"] for f in port["fixed_ips"]]
    if sorted(have) == sorted(dhcp_subnets):
        return port, False
    keep, seen = [], set()
    for f in port["fixed_ips"]:
        if f["subnet_id"] in dhcp_subnets and f["subnet_id"] not in seen:
            keep.append(f)
            seen.add(f["subnet_id"])
    wanted = keep + [{"subnet_id": s} for s in dhcp_subnets if s not in seen]
    return ports.update(conn, port["id"], {"fixed_ips": wanted}, dns), True


# -- acknowledgements ----------------------------------------------------------------------

_activate = (
    sa.update(ports_table)
    .where(
        ports_table.c.id == sa.bindparam("pid"),
        ports_table.c.revision_number == sa.bindparam("rev"),
        ports_table.c.status != STATUS_ACTIVE,
    )
    .values(status=STATUS_ACTIVE)
)


def record_acks(
    conn: Connection, host: str, net_id: str, acked: dict[str, int], now: float
) -> tuple[int, list[str]]:
    """Record host's acknowledgements {port id: revision} of ports on net_id.

    Ports that are gone or on another network are ignored. A port acknowledged at
    its current revision becomes ACTIVE; its revision_number is left as it is.
    Returns (acknowledgements recorded, ids of the ports that became ACTIVE).
    """
    recorded = 0
    activated: list[str] = []
    ids = list(acked)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        rows = conn.execute(
            sa.select(ports_table.c.id, ports_table.c.revision_number, ports_table.c.status).where(
                ports_table.c.id.in_(chunk), ports_table.c.network_id == net_id
            )
        ).all()
        if not rows:
            continue
        known = [r.id for r in rows]
        conn.execute(
            sa.delete(port_acks).where(port_acks.c.host == host, port_acks.c.port_id.in_(known))
        )
        conn.execute(
            sa.insert(port_acks),
            [
                {"port_id": pid, "host": host, "revision_number": acked[pid], "acked_at": now}
                for pid in known
            ],
        )
        recorded += len(known)
        current = [
            {"pid": r.id, "rev": r.revision_number}
            for r in rows
            if r.revision_number == acked[r.id] and r.status != STATUS_ACTIVE
        ]
        if current:
            conn.execute(_activate, current)
            activated.extend(c["pid"] for c in current)
    return recorded, activated


def set_port_status(conn: Connection, port_id: str, revision: int, status: str) -> bool:
    """Set a port's status if it is still at revision, without a new revision."""
    result = conn.execute(
        sa.update(ports_table)
        .where(ports_table.c.id == port_id, ports_table.c.revision_number == revision)
        .values(status=status)
    )
    return result.rowcount > 0


def acks_of(conn: Connection, port_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(port_acks).where(port_acks.c.port_id == port_id).order_by(port_acks.c.host)
    ).all()
    return [
        {"host": r.host, "revision_number": r.revision_number, "acked_at": r.acked_at} for r in rows
    ]


# -- the state of a network, for a sync ------------------------------------------------------


def network_state(conn: Connection, net_id: str, dns: DnsDefaults) -> dict[str, Any]:
    """The network, its subnets and its ports (store views) as of one transaction."""
    row = networks.get_row(conn, net_id)
    sub_rows = conn.execute(
        sa.select(subnets_table)
        .where(subnets_table.c.network_id == net_id)
        .order_by(subnets_table.c.created_at, subnets_table.c.id)
    ).all()
    net = networks.view(row, [r.id for r in sub_rows], dns)
    domain = dns.domain_of(row.extra)
    port_rows = conn.execute(
        sa.select(ports_table)
        .where(ports_table.c.network_id == net_id)
        .order_by(ports_table.c.created_at, ports_table.c.id)
    ).all()
    ips: dict[str, list[dict[str, str]]] = {}
    for r in conn.execute(
        sa.select(
            ip_allocations.c.port_id,
            ip_allocations.c.subnet_id,
            ip_allocations.c.ip,
            subnets_table.c.cidr,
        )
        .join(ports_table, ports_table.c.id == ip_allocations.c.port_id)
        .join(subnets_table, subnets_table.c.id == ip_allocations.c.subnet_id)
        .where(ports_table.c.network_id == net_id)
        .order_by(ip_allocations.c.subnet_id, ip_allocations.c.ip)
    ):
        ips.setdefault(r.port_id, []).append(
            {"subnet_id": r.subnet_id, "ip_address": allocation.ip_str(r.cidr, r.ip)}
        )
    return {
        "network": net,
        "subnets": [subnets.view(r, []) for r in sub_rows],
        "ports": [ports.view(r, ips.get(r.id, []), domain) for r in port_rows],
    }
