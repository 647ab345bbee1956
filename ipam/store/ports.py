"""Ports: a VM NIC (or a DHCP server's interface) with its MAC and fixed IPs, its
hostname (dns_name) and its per-port DHCP options (extra_dhcp_opts)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam.db.schema import ip_allocations, ports, subnets
from ipam.db.schema import networks as networks_table
from ipam.exceptions import (
    InvalidInput,
    IpAddressGenerationFailure,
    NetworkNotFound,
    PortNotFound,
)
from ipam.store import allocation, validators
from ipam.store import dns as names
from ipam.store.attributes import (
    PORT_PASSIVE,
    project_of,
    shown,
    split_passive,
    standard_updates,
    timestamp,
    with_passive,
)
from ipam.store.dns import DnsDefaults
from ipam.store.networks import domains

MAX_FIXED_IPS = 16
STATUS_DOWN = "DOWN"

# API attribute -> column, for the attributes that are columns.
COLUMNS = {
    "id": "id",
    "name": "name",
    "network_id": "network_id",
    "mac_address": "mac_address",
    "device_id": "device_id",
    "device_owner": "device_owner",
    "binding:host_id": "host_id",
    "status": "status",
    "admin_state_up": "admin_state_up",
    "project_id": "project_id",
    "tenant_id": "project_id",
    "description": "description",
}


_SUBNET_COLUMNS = (
    subnets.c.cidr,
    subnets.c.gateway_ip,
    subnets.c.ipv6_address_mode,
    subnets.c.ipv6_ra_mode,
)
_subnets_of = (
    sa.select(subnets.c.id, *_SUBNET_COLUMNS)
    .where(subnets.c.network_id == sa.bindparam("nid"))
    .order_by(subnets.c.created_at, subnets.c.id)
)
# The network and its subnets in one round trip (the port-create hot path).
_network_and_subnets = (
    sa.select(
        networks_table.c.id,
        networks_table.c.project_id,
        networks_table.c.extra,
        subnets.c.id.label("subnet_id"),
        *_SUBNET_COLUMNS,
    )
    .select_from(networks_table.outerjoin(subnets, subnets.c.network_id == networks_table.c.id))
    .where(networks_table.c.id == sa.bindparam("nid"))
    .order_by(subnets.c.created_at, subnets.c.id)
)
_insert_port = sa.insert(ports)


class _Subnet(Protocol):
    """A subnet as a port needs it: a row of _subnets_of, or one of _network_and_subnets."""

    @property
    def id(self) -> str: ...
    @property
    def cidr(self) -> str: ...
    @property
    def gateway_ip(self) -> str | None: ...
    @property
    def ipv6_address_mode(self) -> str | None: ...
    @property
    def ipv6_ra_mode(self) -> str | None: ...


def get_row(conn: Connection, port_id: str, lock: bool = False) -> Row:
    query = sa.select(ports).where(ports.c.id == port_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise PortNotFound(port_id)
    return row


def view(
    row: Row | SimpleNamespace, fixed_ips: list[dict[str, str]], domain: str
) -> dict[str, Any]:
    """The port as the API shows it; domain: its network's effective DNS domain.

    dns_name is the served one (the column), else a legacy value migration 0008 left in
    extra (shown, not served: its dns_assignment is empty)."""
    extra = row.extra or {}
    out = with_passive(extra, PORT_PASSIVE)
    out.update(
        dns_name=row.dns_name or extra.get("dns_name", ""),
        dns_assignment=names.assignment(row.dns_name, domain, fixed_ips),
        extra_dhcp_opts=[dict(o) for o in extra.get(names.OPTS, [])],
        id=row.id,
        name=row.name,
        network_id=row.network_id,
        mac_address=row.mac_address,
        fixed_ips=fixed_ips,
        device_id=row.device_id,
        device_owner=row.device_owner,
        status=row.status,
        admin_state_up=row.admin_state_up,
        tenant_id=row.project_id,
        project_id=row.project_id,
        description=row.description,
        created_at=shown(row.created_at),
        updated_at=shown(row.updated_at),
        revision_number=row.revision_number,
    )
    out["binding:host_id"] = row.host_id
    out["binding:vif_type"] = "other" if row.host_id else "unbound"
    out["binding:vif_details"] = {}
    return out


_allocations_with_cidr = (
    sa.select(ip_allocations, subnets.c.cidr)
    .join(subnets, subnets.c.id == ip_allocations.c.subnet_id)
    .order_by(ip_allocations.c.subnet_id, ip_allocations.c.ip)
)


def _fixed_ips(conn: Connection, port_ids: list[str] | None) -> dict[str, list[dict[str, str]]]:
    query = _allocations_with_cidr
    if port_ids is not None:
        query = query.where(ip_allocations.c.port_id.in_(port_ids))
    out: dict[str, list[dict[str, str]]] = {}
    for r in conn.execute(query):
        out.setdefault(r.port_id, []).append(
            {"subnet_id": r.subnet_id, "ip_address": allocation.ip_str(r.cidr, r.ip)}
        )
    return out


def _network_subnets(conn: Connection, net_id: str) -> Sequence[Row]:
    return conn.execute(_subnets_of, {"nid": net_id}).all()


def _text(attrs: dict[str, Any], key: str) -> str:
    return validators.display_name(attrs.get(key) or "", key)


def _resolve(
    subs: Sequence[_Subnet], net_id: str, request: list[dict[str, Any]], mac: str
) -> list[tuple[_Subnet, int | None]]:
    """Check the requested fixed_ips against the network's subnets: (subnet, stored IP
    or None), plus every automatic-address (SLAAC, DHCPv6-stateless) subnet not named,
    as Neutron adds them: on those a port's address is the EUI-64 one of its MAC."""
    if len(request) > MAX_FIXED_IPS:
        raise InvalidInput(f"Invalid input for fixed_ips. Reason: more than {MAX_FIXED_IPS}.")
    by_id = {s.id: s for s in subs}
    out: list[tuple[_Subnet, int | None]] = []
    for entry in request:
        subnet_id, ip_text = entry.get("subnet_id"), entry.get("ip_address")
        if subnet_id is None and ip_text is None:
            raise InvalidInput("Invalid input for fixed_ips. Reason: give subnet_id or ip_address.")
        ip = validators.ip_address(ip_text, None) if ip_text is not None else None
        if subnet_id is not None:
            sub = by_id.get(validators.uuid_str(subnet_id, "subnet_id"))
            if sub is None:
                raise InvalidInput(
                    f"Invalid input for fixed_ips. Reason: subnet {subnet_id} is not on network "
                    f"{net_id}."
                )
        else:
            sub = next((s for s in subs if _within(ip, s.cidr)), None)
            if sub is None:
                raise InvalidInput(
                    f"IP address {ip} is not a valid IP for any subnet on network {net_id}."
                )
        if allocation.is_auto_address(sub):
            auto = allocation.eui64(sub.cidr, mac)
            if ip is not None and ip != auto:
                raise InvalidInput(
                    f"IPv6 address {ip} cannot be directly assigned to a port on subnet "
                    f"{sub.id} as the subnet is configured for automatic addresses"
                )
            ip = auto
        if ip is not None:
            cidr = allocation.network(sub.cidr)
            edges = (cidr.network_address, cidr.broadcast_address)[: 2 if cidr.version == 4 else 1]
            if not _within(ip, sub.cidr) or ip in edges:
                raise InvalidInput(f"IP address {ip} is not a valid IP for the specified subnet.")
            if sub.gateway_ip and str(ip) == sub.gateway_ip:
                raise InvalidInput(f"IP address {ip} is the gateway of subnet {sub.id}.")
        out.append((sub, allocation.encode(sub.cidr, ip) if ip is not None else None))
    named = {s.id for s, _ in out}
    out += [
        (s, allocation.encode(s.cidr, allocation.eui64(s.cidr, mac)))
        for s in subs
        if allocation.is_auto_address(s) and s.id not in named
    ]
    explicit = [(s.id, ip) for s, ip in out if ip is not None]
    if len(set(explicit)) != len(explicit):
        raise InvalidInput("Invalid input for fixed_ips. Reason: duplicate IP address.")
    return out


def _within(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, cidr: str) -> bool:
    net = allocation.network(cidr)
    return ip is not None and ip.version == net.version and ip in net


def _allocate(
    conn: Connection, port_id: str, wanted: Sequence[tuple[_Subnet, int | None]]
) -> list[dict]:
    """Allocate the resolved fixed_ips; returns them as the API shows them."""
    out = []
    for sub, ip in wanted:
        if ip is not None:
            allocation.allocate_specific(conn, sub.id, ip, port_id, sub.cidr)
        else:
            ip = allocation.allocate_any(conn, sub.id, port_id)
            if ip is None:
                raise IpAddressGenerationFailure(
                    f"No more IP addresses available on subnet {sub.id}."
                )
        out.append({"subnet_id": sub.id, "ip_address": allocation.ip_str(sub.cidr, ip)})
    return out


def _allocate_auto(
    conn: Connection, subs: Sequence[_Subnet], net_id: str, port_id: str, mac: str
) -> list[dict]:
    """As Neutron: one address from the first IPv4 subnet that has one, one from the
    first stateful IPv6 subnet that has one, and the EUI-64 address of the MAC on every
    automatic-address IPv6 subnet (a dual-stack port gets an address of each family)."""
    out = []
    pooled = [s for s in subs if not allocation.is_auto_address(s)]
    for version in (4, 6):
        family = [s for s in pooled if allocation.network(s.cidr).version == version]
        for sub in family:
            ip = allocation.allocate_any(conn, sub.id, port_id)
            if ip is not None:
                out.append({"subnet_id": sub.id, "ip_address": allocation.ip_str(sub.cidr, ip)})
                break
        else:
            if family:
                raise IpAddressGenerationFailure(
                    f"No more IP addresses available on network {net_id}."
                )
    auto = [
        (s, allocation.encode(s.cidr, allocation.eui64(s.cidr, mac)))
        for s in subs
        if allocation.is_auto_address(s)
    ]
    return out + _allocate(conn, port_id, auto)


def _sort_key(fixed: dict[str, str]) -> tuple[str, int]:
    return fixed["subnet_id"], int(ipaddress.ip_address(fixed["ip_address"]))


def _check_name_free(
    conn: Connection, net_id: str, name: str, except_port: str | None = None
) -> None:
    """One port per network has a name. The unique index catches a concurrent create
    (an IntegrityError: the transaction is retried, and this check then refuses it)."""
    query = sa.select(ports.c.id).where(ports.c.network_id == net_id, ports.c.dns_name == name)
    if except_port is not None:
        query = query.where(ports.c.id != except_port)
    other = conn.execute(query.limit(1)).scalar()
    if other is not None:
        raise InvalidInput(
            f"Invalid input for dns_name. Reason: dns_name {name!r} is already used by port "
            f"{other} on network {net_id}."
        )


def _domain(conn: Connection, net_id: str, dns: DnsDefaults) -> str:
    return domains(conn, [net_id], dns).get(net_id, dns.domain)


def create(
    conn: Connection, attrs: dict[str, Any], mac_prefix: str, dns: DnsDefaults
) -> dict[str, Any]:
    attrs = dict(attrs)
    extra = split_passive(attrs, PORT_PASSIVE)
    dns_name = names.dns_name(attrs.get("dns_name"))
    if attrs.get(names.OPTS) is not None:
        opts = names.dhcp_opts(attrs[names.OPTS], None)
        if opts:
            extra[names.OPTS] = opts
    project = project_of(attrs)
    net_id = attrs.get("network_id")
    if not net_id:
        raise InvalidInput("Invalid input for network_id. Reason: it is required.")
    net_id = validators.uuid_str(net_id, "network_id")
    rows = conn.execute(_network_and_subnets, {"nid": net_id}).all()
    if not rows:
        raise NetworkNotFound(net_id)
    net = rows[0]
    subs = [
        SimpleNamespace(
            id=r.subnet_id,
            cidr=r.cidr,
            gateway_ip=r.gateway_ip,
            ipv6_address_mode=r.ipv6_address_mode,
            ipv6_ra_mode=r.ipv6_ra_mode,
        )
        for r in rows
        if r.subnet_id is not None
    ]
    if dns_name is not None:
        _check_name_free(conn, net.id, dns_name)
    port_id = str(uuid.uuid4())
    if attrs.get("mac_address") is not None:
        mac = validators.mac_address(attrs["mac_address"])
        allocation.check_mac_free(conn, net.id, mac)
    else:
        mac = allocation.random_mac(mac_prefix)
    now = timestamp()
    values = {
        "id": port_id,
        "network_id": net.id,
        "name": _text(attrs, "name"),
        "mac_address": mac,
        "device_id": _text(attrs, "device_id"),
        "device_owner": _text(attrs, "device_owner"),
        "host_id": _text(attrs, "binding:host_id"),
        "status": STATUS_DOWN,
        "admin_state_up": attrs.get("admin_state_up", True) is not False,
        "dns_name": dns_name,
        "project_id": project if project is not None else net.project_id,
        "description": _text(attrs, "description"),
        "extra": extra,
        "created_at": now,
        "updated_at": now,
        "revision_number": 1,
    }
    wanted = (
        None if attrs.get("fixed_ips") is None else _resolve(subs, net.id, attrs["fixed_ips"], mac)
    )
    conn.execute(_insert_port, values)
    if wanted is None:
        fixed = _allocate_auto(conn, subs, net.id, port_id, mac)
    else:
        fixed = _allocate(conn, port_id, wanted)
    fixed.sort(key=_sort_key)
    return view(SimpleNamespace(**values), fixed, dns.domain_of(net.extra))


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(ports.c.network_id, sa.func.count()).group_by(ports.c.network_id))
    return {network_id: n for network_id, n in rows}


def show(conn: Connection, port_id: str, dns: DnsDefaults) -> dict[str, Any]:
    row = get_row(conn, port_id)
    fixed = _fixed_ips(conn, [port_id]).get(port_id, [])
    return view(row, fixed, _domain(conn, row.network_id, dns))


# The order of a port list; order_key gives it for a row (ipam.store.port_list keeps it).
ORDER = (ports.c.created_at, ports.c.id)


def order_key(row: Row) -> tuple[str, str]:
    return (row.created_at, row.id)


def _views(conn: Connection, rows: Sequence[Row], every: bool, dns: DnsDefaults) -> list[dict]:
    """The views of rows, their addresses and their networks' domains read once for all
    (every: read them for the whole store, cheaper than a long IN list)."""
    ips = _fixed_ips(conn, None if every else [r.id for r in rows])
    nets = domains(conn, None if every else {r.network_id for r in rows}, dns)
    return [view(r, ips.get(r.id, []), nets.get(r.network_id, dns.domain)) for r in rows]


def list_(
    conn: Connection, sql_filters: dict[str, list[Any]], dns: DnsDefaults
) -> list[dict[str, Any]]:
    query = sa.select(ports).order_by(*ORDER)
    for key, values in sql_filters.items():
        query = query.where(ports.c[COLUMNS[key]].in_(values))
    rows = conn.execute(query).all()
    return _views(conn, rows, len(rows) > 500, dns)


def listed(
    conn: Connection, dns: DnsDefaults, ids: Sequence[str] | None = None
) -> list[tuple[tuple[str, str], dict]]:
    """(order key, view) of every port, or of the ports of ids, in the list's order."""
    query = sa.select(ports).order_by(*ORDER)
    if ids is not None:
        query = query.where(ports.c.id.in_(ids))
    rows = conn.execute(query).all()
    views = _views(conn, rows, ids is None, dns)
    return [(order_key(r), v) for r, v in zip(rows, views, strict=True)]


def _dns_updates(conn: Connection, row: Row, attrs: dict[str, Any], values: dict) -> None:
    """dns_name and extra_dhcp_opts (Neutron's merge); the port's status goes DOWN
    when what its DHCP servers give out changes, until one has the new entry."""
    extra = values["extra"]
    if "dns_name" in attrs:
        name = names.dns_name(attrs["dns_name"])
        extra.pop("dns_name", None)  # a legacy value (migration 0008) is replaced
        if name != row.dns_name:
            if name is not None:
                _check_name_free(conn, row.network_id, name, except_port=row.id)
            values["dns_name"] = name
            values["status"] = STATUS_DOWN
    if attrs.get(names.OPTS) is not None:
        current = (row.extra or {}).get(names.OPTS, [])
        opts = names.dhcp_opts(attrs[names.OPTS], current)
        if opts != current:
            if opts:
                extra[names.OPTS] = opts
            else:
                extra.pop(names.OPTS, None)
            values["status"] = STATUS_DOWN


def update(
    conn: Connection, port_id: str, attrs: dict[str, Any], dns: DnsDefaults
) -> dict[str, Any]:
    attrs = dict(attrs)
    row = get_row(conn, port_id, lock=True)
    if attrs.get("network_id") not in (None, row.network_id):
        raise InvalidInput("Cannot update read-only attribute network_id")
    values = standard_updates(row, attrs, PORT_PASSIVE)
    _dns_updates(conn, row, attrs, values)
    for key in ("device_id", "device_owner", "binding:host_id"):
        if attrs.get(key) is not None:
            values[COLUMNS[key]] = _text(attrs, key)
    if attrs.get("admin_state_up") is not None:
        values["admin_state_up"] = attrs["admin_state_up"]
    if attrs.get("mac_address") is not None:
        mac = validators.mac_address(attrs["mac_address"])
        if mac != row.mac_address:
            allocation.check_mac_free(conn, row.network_id, mac, except_port=port_id)
            values["mac_address"] = mac
    requested = attrs.get("fixed_ips")
    if requested is not None or "mac_address" in values:
        _readdress(conn, row, requested, values)
    if "mac_address" in values:
        values["status"] = STATUS_DOWN
    values.update(updated_at=timestamp(), revision_number=row.revision_number + 1)
    conn.execute(sa.update(ports).where(ports.c.id == port_id).values(**values))
    return show(conn, port_id, dns)


def _readdress(
    conn: Connection, row: Row, requested: list[dict[str, Any]] | None, values: dict[str, Any]
) -> None:
    """Give the port the requested fixed_ips, or (None) move its EUI-64 addresses to
    its new MAC; its status goes DOWN when its addresses change."""
    port_id, mac = row.id, values.get("mac_address", row.mac_address)
    subs = _network_subnets(conn, row.network_id)
    by_id = {s.id: s for s in subs}
    held = _fixed_ips(conn, [port_id]).get(port_id, [])
    if requested is None:
        if not any(map(allocation.is_auto_address, subs)):
            return
        # A new MAC moves the port's EUI-64 addresses; its other addresses stay.
        requested = [f for f in held if not allocation.is_auto_address(by_id[f["subnet_id"]])]
    wanted = _resolve(subs, row.network_id, requested, mac)
    current = {
        (f["subnet_id"], allocation.encode(by_id[f["subnet_id"]].cidr, f["ip_address"]))
        for f in held
    }
    keep = {(s.id, ip) for s, ip in wanted if ip is not None and (s.id, ip) in current}
    allocation.release(conn, port_id, keep)
    _allocate(conn, port_id, [(s, ip) for s, ip in wanted if (s.id, ip) not in keep])
    if keep != current or len(wanted) != len(keep):
        values["status"] = STATUS_DOWN  # until a DHCP server has the new entry


def delete(conn: Connection, port_id: str, dns: DnsDefaults) -> dict[str, Any]:
    """Delete the port; returns its view as it was (for the agents' port.delete)."""
    row = get_row(conn, port_id, lock=True)
    gone = view(
        row, _fixed_ips(conn, [port_id]).get(port_id, []), _domain(conn, row.network_id, dns)
    )
    allocation.release(conn, port_id)
    conn.execute(sa.delete(ports).where(ports.c.id == port_id))
    return gone


def count_by_status(conn: Connection) -> dict[tuple[str, str], int]:
    """(network id, status) -> number of ports, in one grouped query."""
    query = sa.select(ports.c.network_id, ports.c.status, sa.func.count()).group_by(
        ports.c.network_id, ports.c.status
    )
    return {(net, status): n for net, status, n in conn.execute(query).all()}
