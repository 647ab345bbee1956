"""Subnets: IPv4 or IPv6 CIDR, gateway, allocation pools, DNS servers, host routes,
DHCP on/off, and for IPv6 Neutron's address and router-advertisement modes."""

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
IPV6_MODES = ("dhcpv6-stateful", "dhcpv6-stateless", "slaac")
Net = allocation.Net
Address = allocation.Address


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
        ip_version=row.ip_version,
        cidr=row.cidr,
        gateway_ip=row.gateway_ip,
        allocation_pools=[
            {"start": allocation.ip_str(row.cidr, a), "end": allocation.ip_str(row.cidr, b)}
            for a, b in pools
        ],
        ipv6_address_mode=row.ipv6_address_mode,
        ipv6_ra_mode=row.ipv6_ra_mode,
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


def _dns(values: list[str], version: int) -> list[str]:
    if len(values) > MAX_DNS:
        raise InvalidInput(f"Invalid input for dns_nameservers. Reason: more than {MAX_DNS}.")
    out = [str(validators.ip_address(v, version, "dns_nameservers")) for v in values]
    if len(set(out)) != len(out):
        raise InvalidInput("Invalid input for dns_nameservers. Reason: duplicate address.")
    return out


def _routes(cidr: Net, values: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(values) > MAX_ROUTES:
        raise InvalidInput(f"Invalid input for host_routes. Reason: more than {MAX_ROUTES}.")
    out, seen = [], set()
    for route in values:
        try:
            dest = ipaddress.ip_network(route["destination"], strict=True)
        except (KeyError, ValueError) as exc:
            raise InvalidInput(
                f"Invalid input for host_routes. Reason: destination: {exc}"
            ) from None
        if dest.version != cidr.version:
            raise InvalidInput(
                f"Invalid input for host_routes. Reason: destination {dest} is not an "
                f"IPv{cidr.version} prefix."
            )
        hop = validators.ip_address(route.get("nexthop", ""), cidr.version, "host_routes nexthop")
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


def _gateway(cidr: Net, value: str | None) -> Address | None:
    """null or "" (oVirt's Administration Portal sends a blank box as ""): no gateway."""
    if value is None or value == "":
        return None
    gw = validators.ip_address(value, cidr.version, "gateway_ip")
    edges = (cidr.network_address, cidr.broadcast_address) if cidr.version == 4 else ()
    if gw not in cidr or gw in edges:
        raise InvalidInput(
            f"Invalid input for gateway_ip. Reason: {gw} is not a host address of {cidr}."
        )
    return gw


def _pool_input(values: list[dict[str, str]] | None, version: int) -> list[dict[str, str]] | None:
    """Pools as given, their start and end checked to be addresses of the subnet's
    family (pools_for checks the rest; unchecked, a malformed address made it fail
    with a 500)."""
    if values is None:
        return None
    return [
        {
            k: str(validators.ip_address(pool[k], version, f"allocation_pools {k}"))
            for k in ("start", "end")
        }
        for pool in values
    ]


def _modes(attrs: dict[str, Any], cidr: Net, enable_dhcp: bool) -> tuple[str | None, str | None]:
    """ipv6_address_mode and ipv6_ra_mode, checked as Neutron checks them."""
    address_mode, ra_mode = attrs.get("ipv6_address_mode"), attrs.get("ipv6_ra_mode")
    for field, mode in (("ipv6_address_mode", address_mode), ("ipv6_ra_mode", ra_mode)):
        if mode is not None and mode not in IPV6_MODES:
            raise InvalidInput(
                f"Invalid input for {field}. Reason: '{mode}' is not in "
                f"{[*sorted(IPV6_MODES), None]}."
            )
    if address_mode is None and ra_mode is None:
        return None, None
    if cidr.version == 4:
        raise InvalidInput("ipv6_ra_mode and ipv6_address_mode cannot be set for an IPv4 subnet")
    if not enable_dhcp:
        raise InvalidInput(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False"
        )
    if address_mode is not None and ra_mode is not None and address_mode != ra_mode:
        raise InvalidInput(
            f"ipv6_ra_mode set to '{ra_mode}' with ipv6_address_mode set to '{address_mode}' "
            "is not valid. If both attributes are set, they must be the same value"
        )
    if {address_mode, ra_mode} & set(allocation.AUTO_ADDRESS_MODES) and cidr.prefixlen != 64:
        raise InvalidInput(
            f"Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address "
            "format, which requires the prefix to be /64"
        )
    return address_mode, ra_mode


def _check_overlap(conn: Connection, net_id: str, cidr: Net) -> None:
    for other in conn.execute(
        sa.select(subnets.c.id, subnets.c.cidr).where(subnets.c.network_id == net_id)
    ):
        theirs = ipaddress.ip_network(other.cidr)
        if theirs.version == cidr.version and cidr.overlaps(theirs):
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
    return min(allocation.pool_size(pools), allocation.MAX_POOL_SIZE)


def create(conn: Connection, attrs: dict[str, Any]) -> dict[str, Any]:
    """gateway_ip absent: the first address; present and null or "": no gateway."""
    gateway_given = "gateway_ip" in attrs
    attrs = dict(attrs)
    extra = split_passive(attrs, SUBNET_PASSIVE)
    project = project_of(attrs)
    version = attrs.get("ip_version", 4)
    if version not in (4, 6) or isinstance(version, bool):
        raise InvalidInput(f"Invalid input for ip_version. Reason: {version!r} is not in [4, 6].")
    if not attrs.get("network_id"):
        raise InvalidInput("Invalid input for network_id. Reason: it is required.")
    if not attrs.get("cidr"):
        raise InvalidInput("Invalid input for cidr. Reason: it is required.")
    net_id = validators.uuid_str(attrs["network_id"], "network_id")  # 400, as for ports
    net = networks.get_row(conn, net_id, lock=True)  # serialises subnet creation
    cidr = validators.ip_network(attrs["cidr"], version)
    enable_dhcp = attrs.get("enable_dhcp", True) is not False
    address_mode, ra_mode = _modes(attrs, cidr, enable_dhcp)
    gw_value = attrs.get("gateway_ip") if gateway_given else str(cidr.network_address + 1)
    gateway = _gateway(cidr, gw_value)
    pools = allocation.pools_for(cidr, gateway, _pool_input(attrs.get("allocation_pools"), version))
    _check_overlap(conn, net.id, cidr)
    now, subnet_id = timestamp(), str(uuid.uuid4())
    conn.execute(
        sa.insert(subnets).values(
            id=subnet_id,
            network_id=net.id,
            name=validators.display_name(attrs.get("name") or ""),
            ip_version=version,
            cidr=str(cidr),
            gateway_ip=str(gateway) if gateway else None,
            ipv6_address_mode=address_mode,
            ipv6_ra_mode=ra_mode,
            enable_dhcp=enable_dhcp,
            dns_nameservers=_dns(attrs.get("dns_nameservers") or [], version),
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
    pool_query = sa.select(allocation_pools).order_by(allocation_pools.c.first_ip)
    if sql_filters and len(rows) <= 500:  # the pools of these subnets, not of every subnet
        pool_query = pool_query.where(allocation_pools.c.subnet_id.in_([r.id for r in rows]))
    for r in conn.execute(pool_query):
        pools.setdefault(r.subnet_id, []).append((r.first_ip, r.last_ip))
    return [view(r, pools.get(r.id, [])) for r in rows]


def networks_with_dhcp(conn: Connection, net_ids: list[str]) -> set[str]:
    query = (
        sa.select(subnets.c.network_id)
        .where(subnets.c.network_id.in_(net_ids), subnets.c.enable_dhcp.is_(True))
        .distinct()
    )
    return set(conn.execute(query).scalars())


def update(conn: Connection, subnet_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    gateway_given = "gateway_ip" in attrs
    attrs = dict(attrs)
    row = get_row(conn, subnet_id, lock=True)
    for fixed in ("network_id", "cidr", "ip_version", "ipv6_address_mode", "ipv6_ra_mode"):
        if (
            fixed in attrs
            and attrs[fixed] is not None
            and str(attrs[fixed]) != str(getattr(row, fixed))
        ):
            raise InvalidInput(f"Cannot update read-only attribute {fixed}")
    cidr = allocation.network(row.cidr)
    values = standard_updates(row, attrs, SUBNET_PASSIVE)
    if attrs.get("enable_dhcp") is not None:
        if attrs["enable_dhcp"] is False and (row.ipv6_address_mode or row.ipv6_ra_mode):
            raise InvalidInput("Cannot disable enable_dhcp with ipv6 attributes set")
        values["enable_dhcp"] = attrs["enable_dhcp"]
    if attrs.get("dns_nameservers") is not None:
        values["dns_nameservers"] = _dns(attrs["dns_nameservers"], cidr.version)
    if attrs.get("host_routes") is not None:
        values["host_routes"] = _routes(cidr, attrs["host_routes"])
    gateway = (
        _gateway(cidr, attrs.get("gateway_ip"))
        if gateway_given
        else (ipaddress.ip_address(row.gateway_ip) if row.gateway_ip else None)
    )
    if gateway_given:
        values["gateway_ip"] = str(gateway) if gateway else None
        if gateway is not None and _allocated(
            conn, subnet_id, allocation.encode(row.cidr, gateway)
        ):
            raise InvalidInput(f"Gateway ip {gateway} is already allocated to a port.")
    current = allocation.load_pools(conn, subnet_id)
    given = attrs.get("allocation_pools")
    if given is not None or gateway_given:
        if given is None:
            given = [
                {"start": allocation.ip_str(row.cidr, a), "end": allocation.ip_str(row.cidr, b)}
                for a, b in current
            ]
        pools = allocation.pools_for(cidr, gateway, _pool_input(given, cidr.version))
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
