"""Hosts as their host services report them (heartbeats): the registry the DHCP
manager places DHCP servers from."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ipam.db.schema import hosts


def is_alive(last_seen: float, host_down_time: float, now: float) -> bool:
    """Whether a host is alive: its last heartbeat (``last_seen`` of its host service's
    or its DHCP agent's record) is within host_down_time of now."""
    return now - last_seen <= host_down_time


def heartbeat(
    conn: Connection, name: str, bridges: list[str], started_at: float, now: float
) -> None:
    values = {"bridges": bridges, "started_at": started_at, "last_seen": now}
    updated = conn.execute(sa.update(hosts).where(hosts.c.name == name).values(**values))
    if updated.rowcount == 0:
        conn.execute(sa.insert(hosts).values(name=name, **values))


def list_(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(hosts).order_by(hosts.c.name))
    return [
        {
            "name": r.name,
            "bridges": list(r.bridges),
            "started_at": r.started_at,
            "last_seen": r.last_seen,
            "dhcp_desired": r.dhcp_desired,
            "dhcp_confirmed": r.dhcp_confirmed,
        }
        for r in rows
    ]


def set_dhcp_lists(conn: Connection, name: str, values: dict[str, Any]) -> None:
    conn.execute(sa.update(hosts).where(hosts.c.name == name).values(**values))
