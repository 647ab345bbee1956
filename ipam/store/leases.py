"""DHCP leases: what each host's dnsmasq last saw of each client (the agents'
``lease.facts``), where intent (the port) meets fact (the lease).

A row is per (network, MAC, host). It is joined to a port by (network, MAC) when
shown, never by address: a fact about a MAC that is not the port's (a client
answering for another's address) is never attached to that port. Facts about MACs
with no port are kept and listed as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam.db.schema import dhcp_leases, networks, ports

#: Reasons shown on a port whose lease is not right (dhcp_status_reason).
REASONS = {
    "declined": "declined by the client: address in use",
    "nak": "refused by the DHCP server on {host}",
    "released": "released by the client",
    "expired": "the lease expired without renewal",
    "offered": "offered by {host} but never requested",
    "none": "no request seen since the port was created",
    "other": "the client holds {ip}, not the port's address",
}
STATES = ("offered", "bound", "nak", "released", "declined", "expired")


def record(
    conn: Connection,
    host: str,
    network_id: str,
    facts: list[dict[str, Any]],
    rebuilt: bool,
    now: float,
) -> int:
    """Store a batch of one host's facts; returns how many rows changed.

    ``rebuilt``: the facts are all the host's dnsmasq holds (its lease file): a bound
    lease of this host that is not among them and has run out becomes expired.
    """
    if conn.execute(sa.select(networks.c.id).where(networks.c.id == network_id)).first() is None:
        return 0  # the network is gone: its leases went with it
    key = (dhcp_leases.c.network_id == network_id) & (dhcp_leases.c.host == host)
    held = {
        r.mac_address: r
        for r in conn.execute(
            sa.select(dhcp_leases).where(
                key & dhcp_leases.c.mac_address.in_([f["mac_address"] for f in facts])
            )
        )
    }
    changed = 0
    for fact in facts:
        values = {
            "ip_address": fact["ip_address"],
            "state": fact["state"],
            "last_seen": fact["seen_at"],
            "expires_at": fact.get("expires_at"),
            "reason": fact.get("reason"),
        }
        # What the client said of itself is kept until it says something else: a
        # RELEASE, a NAK or a rebuild does not carry it.
        for said in ("client_id", "client_hostname"):
            if fact.get(said) is not None:
                values[said] = fact[said]
        old = held.get(fact["mac_address"])
        if old is None:
            conn.execute(
                sa.insert(dhcp_leases).values(
                    network_id=network_id,
                    mac_address=fact["mac_address"],
                    host=host,
                    first_seen=fact["seen_at"],
                    **values,
                )
            )
        else:
            if old.ip_address != fact["ip_address"]:
                values["first_seen"] = fact["seen_at"]
            conn.execute(
                sa.update(dhcp_leases)
                .where(key & (dhcp_leases.c.mac_address == fact["mac_address"]))
                .values(**values)
            )
        changed += 1
    if rebuilt:
        gone = conn.execute(
            sa.update(dhcp_leases)
            .where(
                key
                & (dhcp_leases.c.state == "bound")
                & dhcp_leases.c.mac_address.not_in([f["mac_address"] for f in facts])
                & (dhcp_leases.c.expires_at <= now)
            )
            .values(state="expired")
        )
        changed += gone.rowcount or 0
    return changed


def _iso(value: float | None) -> str | None:
    """UTC, to the millisecond: when a lease showed matters to less than a second."""
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def view(row: Row, now: float) -> dict[str, Any]:
    """A lease as the API shows it (a bound lease past its end shows as expired)."""
    state = row.state
    if state == "bound" and row.expires_at is not None and row.expires_at <= now:
        state = "expired"
    return {
        "state": state,
        "ip_address": row.ip_address,
        "host": row.host,
        "first_seen": _iso(row.first_seen),
        "last_seen": _iso(row.last_seen),
        "expires_at": _iso(row.expires_at),
        "client_id": row.client_id,
        "client_hostname": row.client_hostname,
    }


def _current(rows: list[Row], now: float) -> Row:
    """The binding that counts: a live bound lease if any host holds one, else the
    newest fact."""
    live = [r for r in rows if r.state == "bound" and (r.expires_at is None or r.expires_at > now)]
    return max(live or rows, key=lambda r: r.last_seen)


def for_ports(
    conn: Connection, keys: Iterable[tuple[str, str]], now: float
) -> dict[tuple[str, str], Row]:
    """(network id, MAC) -> the current lease row, for these ports."""
    wanted = set(keys)
    if not wanted:
        return {}
    networks = {n for n, _ in wanted}
    rows = conn.execute(
        sa.select(dhcp_leases).where(
            dhcp_leases.c.network_id.in_(networks)
            & dhcp_leases.c.mac_address.in_({m for _, m in wanted})
        )
    ).all()
    by_key: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if (r.network_id, r.mac_address) in wanted:
            by_key.setdefault((r.network_id, r.mac_address), []).append(r)
    return {k: _current(v, now) for k, v in by_key.items()}


def status_reason(port: dict[str, Any], lease: Row | None, now: float) -> str | None:
    """Why a port's DHCP is not right, in words; None when it is (or cannot be yet)."""
    if port.get("device_owner") == "network:dhcp":
        return None
    if lease is None:
        return REASONS["none"]
    state = view(lease, now)["state"]
    if state == "bound":
        held = {f["ip_address"] for f in port.get("fixed_ips", [])}
        if lease.ip_address not in held:
            return REASONS["other"].format(ip=lease.ip_address)
        return None
    reason = REASONS[state].format(host=lease.host, ip=lease.ip_address)
    if state == "nak" and lease.reason:
        reason += f" ({lease.reason})"
    return reason


def list_(
    conn: Connection, network_id: str | None, state: str | None, now: float
) -> list[dict[str, Any]]:
    """Every lease (of a network), with the port whose MAC it is (None: no port)."""
    query = (
        sa.select(dhcp_leases, ports.c.id.label("port_id"))
        .select_from(
            dhcp_leases.outerjoin(
                ports,
                (ports.c.network_id == dhcp_leases.c.network_id)
                & (ports.c.mac_address == dhcp_leases.c.mac_address),
            )
        )
        .order_by(dhcp_leases.c.network_id, dhcp_leases.c.mac_address, dhcp_leases.c.host)
    )
    if network_id is not None:
        query = query.where(dhcp_leases.c.network_id == network_id)
    out = []
    for row in conn.execute(query):
        item = view(row, now) | {
            "network_id": row.network_id,
            "mac_address": row.mac_address,
            "port_id": row.port_id,
        }
        if state is None or item["state"] == state:
            out.append(item)
    return out


def counts(conn: Connection, now: float) -> dict[tuple[str, str], int]:
    """(network id, state) -> leases, for the metrics (bound past its end: expired),
    in one grouped query."""
    state = sa.case(
        ((dhcp_leases.c.state == "bound") & (dhcp_leases.c.expires_at <= now), "expired"),
        else_=dhcp_leases.c.state,
    )
    rows = conn.execute(
        sa.select(dhcp_leases.c.network_id, state, sa.func.count()).group_by(
            dhcp_leases.c.network_id, state
        )
    )
    return {(net, st): n for net, st, n in rows}
