"""IP availability per network and subnet (Neutron's network-ip-availabilities).

Totals are counted from the allocation pools in Python, not summed in SQL: an IPv6
/64 alone holds 2**64 - 2 addresses, more than a database integer holds."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ipam.db.schema import allocation_pools, ip_allocations, networks, subnets


def _used_and_total(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    used: dict[str, int] = dict(
        conn.execute(
            sa.select(ip_allocations.c.subnet_id, sa.func.count()).group_by(
                ip_allocations.c.subnet_id
            )
        ).all()
    )
    total: dict[str, int] = {}
    for pool in conn.execute(
        sa.select(
            allocation_pools.c.subnet_id, allocation_pools.c.first_ip, allocation_pools.c.last_ip
        )
    ):
        size = pool.last_ip - pool.first_ip + 1
        total[pool.subnet_id] = total.get(pool.subnet_id, 0) + size
    return used, total


def per_subnet(conn: Connection) -> list[dict[str, Any]]:
    """Every subnet's network, IP version, total and used addresses, in three queries
    whatever the number of networks (the metrics endpoint's view)."""
    used, total = _used_and_total(conn)
    query = sa.select(subnets.c.id, subnets.c.network_id, subnets.c.ip_version)
    return [
        {
            "network_id": s.network_id,
            "subnet_id": s.id,
            "ip_version": s.ip_version,
            "total_ips": total.get(s.id, 0),
            "used_ips": used.get(s.id, 0),
        }
        for s in conn.execute(query.order_by(subnets.c.network_id, subnets.c.id))
    ]


def list_(
    conn: Connection, network_ids: list[str] | None = None, versions: set[int] | None = None
) -> list[dict[str, Any]]:
    used, total = _used_and_total(conn)
    net_query = sa.select(networks).order_by(networks.c.created_at, networks.c.id)
    if network_ids is not None:
        net_query = net_query.where(networks.c.id.in_(network_ids))
    out = []
    for net in conn.execute(net_query).all():
        subs = conn.execute(
            sa.select(subnets)
            .where(subnets.c.network_id == net.id)
            .order_by(subnets.c.created_at, subnets.c.id)
        ).all()
        per_subnet = [
            {
                "subnet_id": s.id,
                "subnet_name": s.name,
                "cidr": s.cidr,
                "ip_version": s.ip_version,
                "total_ips": total.get(s.id, 0),
                "used_ips": used.get(s.id, 0),
            }
            for s in subs
            if versions is None or s.ip_version in versions
        ]
        out.append(
            {
                "network_id": net.id,
                "network_name": net.name,
                "tenant_id": net.project_id,
                "project_id": net.project_id,
                "total_ips": sum(s["total_ips"] for s in per_subnet),
                "used_ips": sum(s["used_ips"] for s in per_subnet),
                "subnet_ip_availability": per_subnet,
            }
        )
    return out
