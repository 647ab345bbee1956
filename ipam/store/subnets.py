"""Subnets: IPv4 CIDR, gateway, allocation pools, DNS servers, host routes, DHCP on/off."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam.bus.contracts import DHCP_OWNER
from ipam.db.schema import allocation_pools, ip_allocations, ports, subnets
from ipam.exceptions import InvalidInput, SubnetInUse, SubnetNotFound
from ipam.store import allocation, networks, validators
from ipam.store.attributes import (
    SUBNET_PASSIVE,
    project_of,
    shown,
    split_passive,
    standard_updates,
    timestamp,
    with_passive,
)

MAX_DNS = 5
MAX_ROUTES = 20


def get_row(conn: Connection, subnet_id: str, lock: bool = False) -> Row:
    query = sa.select(subnets).where(subnets.c.id == subnet_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise SubnetNotFound(subnet_id)
    return row


def view(row: Row, pools: list[allocation.Pool]) -> dict[str, Any]:
    out = with_passive(row.extra, SUBNET_PASSIVE)
    out.update(
        id=row.id,
        name=row.name,
        network_id=row.network_id,
        ip_version=4,
        cidr=row.cidr,
        gateway_ip=row.gateway_ip,
        allocation_pools=[
            {"start": allocation.ip_str(a), "end": allocation.ip_str(b)} for a, b in pools
        ],
        dns_nameservers=list(row.dns_nameservers),
        host_routes=list(row.host_routes),
        enable_dhcp=row.enable_dhcp,
        tenant_id=row.project_id,
        project_id=row.project_id,
        description=row.description,
        created_at=shown(row.created_at),
        updated_at=shown(row.updated_at),
        revision_number=row.revision_number,
    )
    return out


def _dns(values: list[str]) -> list[str]:
    if len(values) > MAX_DNS:
        raise InvalidInput(f"Invalid input for dns_nameservers. Reason: more than {MAX_DNS}.")
    out = [str(validators.ipv4_address(v, "dns_nameservers")) for v in values]
    if len(set(out)) != len(out):
        raise InvalidInput("Invalid input for dns_nameservers. Reason: duplicate address.")
    return out


def _routes(cidr: ipaddress.IPv4Network, values: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(values) > MAX_ROUTES:
        raise InvalidInput(f"Invalid input for host_routes. Reason: more than {MAX_ROUTES}.")
    out, seen = [], set()
    for route in values:
        try:
            dest = ipaddress.IPv4Network(route["destination"], strict=True)
        except (KeyError, ValueError) as exc:
            raise InvalidInput(
                f"Invalid input for host_routes. Reason: destination: {exc}"
            ) from None
        hop = validators.ipv4_address(route.get("nexthop", ""), "host_routes nexthop")
        if hop not in cidr:
            raise InvalidInput(
                f"Invalid input for host_routes. Reason: nexthop {hop} is not in {cidr}."
            )
        if str(dest) in seen:
            raise InvalidInput(
                f"Invalid input for host_routes. Reason: duplicate destination {dest}."
            )
        seen.add(str(dest))
        out.append({"destination": str(dest), "nexthop": str(hop)})
    return out


def _gateway(cidr: ipaddress.IPv4Network, value: str | None) -> ipaddress.IPv4Address | None:
    """null or "" (oVirt's Administration Portal sends a blank box as ""): no gateway."""
    if value is None or value == "":
        return None
    gw = validators.ipv4_address(value, "gateway_ip")
    if gw not in cidr or gw in (cidr.network_address, cidr.broadcast_address):
        raise InvalidInput(
            f"Invalid input for gateway_ip. Reason: {gw} is not a host address of {cidr}."
        )
    return gw


def _pool_input(values: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
    """Pools as given, their start and end checked to be IPv4 addresses (pools_for
    checks the rest; unchecked, a malformed address made it fail with a 500)."""
    if values is None:
        return None
    return [
        {
            k: str(validators.ipv4_address(pool[k], f"allocation_pools {k}"))
            for k in ("start", "end")
        }
        for pool in values
    ]


def _check_overlap(conn: Connection, net_id: str, cidr: ipaddress.IPv4Network) -> None:
    for other in conn.execute(
        sa.select(subnets.c.id, subnets.c.cidr).where(subnets.c.network_id == net_id)
    ):
        if cidr.overlaps(ipaddress.IPv4Network(other.cidr)):
            raise InvalidInput(
                f"Invalid input for cidr. Reason: {cidr} overlaps with subnet {other.id} "
                f"({other.cidr}) on network {net_id}."
            )


def _write_pools(conn: Connection, subnet_id: str, pools: list[allocation.Pool]) -> int:
    conn.execute(sa.delete(allocation_pools).where(allocation_pools.c.subnet_id == subnet_id))
    conn.execute(
        sa.insert(allocation_pools),
        [{"subnet_id": subnet_id, "first_ip": a, "last_ip": b} for a, b in pools],
    )
    return sum(b - a + 1 for a, b in pools)


def create(conn: Connection, attrs: dict[str, Any]) -> dict[str, Any]:
    """gateway_ip absent: the first address; present and null or "": no gateway."""
    gateway_given = "gateway_ip" in attrs
    attrs = dict(attrs)
    extra = split_passive(attrs, SUBNET_PASSIVE)
    project = project_of(attrs)
    if attrs.get("ip_version", 4) != 4:
        raise InvalidInput(
            f"Invalid input for ip_version. Reason: {attrs['ip_version']} is not supported: "
            "only IPv4 (4) subnets are."
        )
    if not attrs.get("network_id"):
        raise InvalidInput("Invalid input for network_id. Reason: it is required.")
    if not attrs.get("cidr"):
        raise InvalidInput("Invalid input for cidr. Reason: it is required.")
    net_id = validators.uuid_str(attrs["network_id"], "network_id")  # 400, as for ports
    net = networks.get_row(conn, net_id, lock=True)  # serialises subnet creation
    cidr = validators.ipv4_network(attrs["cidr"])
    gw_value = attrs.get("gateway_ip") if gateway_given else str(cidr.network_address + 1)
    gateway = _gateway(cidr, gw_value)
    pools = allocation.pools_for(cidr, gateway, _pool_input(attrs.get("allocation_pools")))
    _check_overlap(conn, net.id, cidr)
    now, subnet_id = timestamp(), str(uuid.uuid4())
    conn.execute(
        sa.insert(subnets).values(
            id=subnet_id,
            network_id=net.id,
            name=validators.display_name(attrs.get("name") or ""),
            cidr=str(cidr),
            gateway_ip=str(gateway) if gateway else None,
            enable_dhcp=attrs.get("enable_dhcp", True) is not False,
            dns_nameservers=_dns(attrs.get("dns_nameservers") or []),
            host_routes=_routes(cidr, attrs.get("host_routes") or []),
            pool_size=0,
            project_id=project if project is not None else net.project_id,
            description=validators.display_name(attrs.get("description") or "", "description"),
            extra=extra,
            created_at=now,
            updated_at=now,
            revision_number=1,
        )
    )
    size = _write_pools(conn, subnet_id, pools)
    conn.execute(sa.update(subnets).where(subnets.c.id == subnet_id).values(pool_size=size))
    return view(get_row(conn, subnet_id), pools)


def show(conn: Connection, subnet_id: str) -> dict[str, Any]:
    return view(get_row(conn, subnet_id), allocation.load_pools(conn, subnet_id))


def list_(conn: Connection, sql_filters: dict[str, list[Any]]) -> list[dict[str, Any]]:
    query = sa.select(subnets).order_by(subnets.c.created_at, subnets.c.id)
    for key, values in sql_filters.items():
        query = query.where(subnets.c[key].in_(values))
    rows = conn.execute(query).all()
    pools: dict[str, list[allocation.Pool]] = {}
    for r in conn.execute(sa.select(allocation_pools).order_by(allocation_pools.c.first_ip)):
        pools.setdefault(r.subnet_id, []).append((r.first_ip, r.last_ip))
    return [view(r, pools.get(r.id, [])) for r in rows]


def update(conn: Connection, subnet_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    gateway_given = "gateway_ip" in attrs
    attrs = dict(attrs)
    row = get_row(conn, subnet_id, lock=True)
    for fixed in ("network_id", "cidr", "ip_version"):
        if (
            fixed in attrs
            and attrs[fixed] is not None
            and str(attrs[fixed]) != str(getattr(row, fixed, 4))
        ):
            raise InvalidInput(f"Cannot update read-only attribute {fixed}")
    cidr = ipaddress.IPv4Network(row.cidr)
    values = standard_updates(row, attrs, SUBNET_PASSIVE)
    if attrs.get("enable_dhcp") is not None:
        values["enable_dhcp"] = attrs["enable_dhcp"]
    if attrs.get("dns_nameservers") is not None:
        values["dns_nameservers"] = _dns(attrs["dns_nameservers"])
    if attrs.get("host_routes") is not None:
        values["host_routes"] = _routes(cidr, attrs["host_routes"])
    gateway = (
        _gateway(cidr, attrs.get("gateway_ip"))
        if gateway_given
        else (ipaddress.IPv4Address(row.gateway_ip) if row.gateway_ip else None)
    )
    if gateway_given:
        values["gateway_ip"] = str(gateway) if gateway else None
        if gateway is not None and _allocated(conn, subnet_id, int(gateway)):
            raise InvalidInput(f"Gateway ip {gateway} is already allocated to a port.")
    current = allocation.load_pools(conn, subnet_id)
    given = attrs.get("allocation_pools")
    if given is not None or gateway_given:
        if given is None:
            given = [
                {"start": allocation.ip_str(a), "end": allocation.ip_str(b)} for a, b in current
            ]
        pools = allocation.pools_for(cidr, gateway, _pool_input(given))
        if pools != current:
            # New pools: restart the cursor; it skips taken addresses once, as it passes them.
            values["pool_size"] = _write_pools(conn, subnet_id, pools)
            values["fresh_cursor"] = 0
    values.update(updated_at=timestamp(), revision_number=row.revision_number + 1)
    conn.execute(sa.update(subnets).where(subnets.c.id == subnet_id).values(**values))
    return show(conn, subnet_id)


def _allocated(conn: Connection, subnet_id: str, ip: int) -> bool:
    return (
        conn.execute(
            sa.select(ip_allocations.c.port_id).where(
                ip_allocations.c.subnet_id == subnet_id, ip_allocations.c.ip == ip
            )
        ).first()
        is not None
    )


def delete(conn: Connection, subnet_id: str) -> dict[str, Any]:
    """Delete the subnet; returns its view as it was (for the agents' subnet.delete)."""
    row = get_row(conn, subnet_id, lock=True)
    users = conn.execute(
        sa.select(ports.c.id, ports.c.device_owner)
        .join(ip_allocations, ip_allocations.c.port_id == ports.c.id)
        .where(ip_allocations.c.subnet_id == subnet_id)
    ).all()
    if any(u.device_owner != DHCP_OWNER for u in users):
        raise SubnetInUse(
            f"Unable to complete operation on subnet {subnet_id}: one or more ports have an "
            "IP allocation from this subnet."
        )
    gone = view(row, allocation.load_pools(conn, subnet_id))
    conn.execute(sa.delete(subnets).where(subnets.c.id == subnet_id))
    return gone
