"""Networks: an oVirt network, its VDSM (bridge) name, its DHCP HA count and lease time,
its DNS domain and whether its DHCP servers answer DNS (both kept in ``extra``).

A network without a bridge (vdsm_name null: nothing gave a valid, free VDSM name) is
kept: it has addresses but no DHCP server, and says why (no_bridge_reason)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam.bus.contracts import DHCP_OWNER, VDSM_NAME_RULE, is_vdsm_name
from ipam.db.schema import networks, ports, subnets
from ipam.exceptions import InvalidInput, NetworkInUse, NetworkNotFound, VdsmNameInUse
from ipam.store import dns as names
from ipam.store import validators
from ipam.store.attributes import (
    NETWORK_PASSIVE,
    project_of,
    shown,
    split_passive,
    standard_updates,
    timestamp,
    with_passive,
)
from ipam.store.dns import DnsDefaults
from ipam.store.validators import NETWORK_NAME_MAX

DEFAULT_MTU = 1500
HA_COUNT_MAX = 64


def _check_mtu(mtu: int) -> int:
    if not 68 <= mtu <= 65535:
        raise InvalidInput(f"Invalid input for mtu. Reason: {mtu} is not in [68, 65535].")
    return mtu


def _check_ha(count: int) -> int:
    if not 0 <= count <= HA_COUNT_MAX:
        raise InvalidInput(
            f"Invalid input for ha_count. Reason: {count} is not in [0, {HA_COUNT_MAX}]."
        )
    return count


#: Where a network's bridge comes from when vdsm_name is not given (oVirt engine never
#: sends vdsm_name: a network linked to a physical oVirt network carries that network's
#: VDSM name as provider:physical_network, and oVirt network names are free text).
PHYSNET = "provider:physical_network"
NO_BRIDGE_HINT = "set its vdsm_name to the bridge that carries it on the hosts"


def bridge_candidate(name: Any, physnet: Any) -> str | None:
    """The bridge a network takes when vdsm_name is not given: provider:physical_network
    when it is a valid VDSM name, else the name when it is one, else none."""
    for value in (physnet, name):
        if isinstance(value, str) and is_vdsm_name(value):
            return value
    return None


def _holder(conn: Connection, vdsm_name: str, except_id: str | None = None) -> str | None:
    """The network whose bridge vdsm_name is (other than except_id), if any."""
    query = sa.select(networks.c.id).where(networks.c.vdsm_name == vdsm_name)
    if except_id:
        query = query.where(networks.c.id != except_id)
    return conn.execute(query).scalar()


def _check_vdsm_name_free(conn: Connection, vdsm_name: str, except_id: str | None = None) -> None:
    other = _holder(conn, vdsm_name, except_id)
    if other:
        raise VdsmNameInUse(f"vdsm_name {vdsm_name} is already used by network {other}.")


def _bridge_for(
    conn: Connection, attrs: dict[str, Any], physnet: Any, name: str, except_id: str | None
) -> str | None:
    """vdsm_name if given (valid and free, or refused), else the candidate when no
    other network has that bridge, else None: the network is kept without a bridge."""
    given = attrs.get("vdsm_name")
    if given is not None:
        vdsm = validators.vdsm_name(given)
        _check_vdsm_name_free(conn, vdsm, except_id)
        return vdsm
    candidate = bridge_candidate(name, physnet)
    if candidate is None or _holder(conn, candidate, except_id):
        return None
    return candidate


def no_bridge_reason(net: dict[str, Any], holder: str | None) -> str:
    """Why a network has no bridge (vdsm_name null), so no DHCP server; holder: the
    network that has the bridge it would take, if any."""
    physnet = net.get(PHYSNET)
    candidate = bridge_candidate(net.get("name"), physnet)
    source = PHYSNET if candidate is not None and candidate == physnet else "its name"
    if candidate is not None and holder:
        why = f"bridge {candidate} (from {source}) is the bridge of network {holder}"
    elif candidate is not None:
        why = f"bridge {candidate} (from {source}) was another network's when it was created"
    else:
        why = (
            "neither provider:physical_network nor its name is a VDSM network name "
            f"({VDSM_NAME_RULE})"
        )
    return f"Network {net['id']} has no bridge (vdsm_name is null): {why}; {NO_BRIDGE_HINT}."


_by_id = sa.select(networks).where(networks.c.id == sa.bindparam("id"))
_by_id_locked = _by_id.with_for_update()


def get_row(conn: Connection, net_id: str, lock: bool = False) -> Row:
    query = _by_id_locked if lock and conn.dialect.name == "postgresql" else _by_id
    row = conn.execute(query, {"id": net_id}).first()
    if row is None:
        raise NetworkNotFound(net_id)
    return row


def view(row: Row, subnet_ids: list[str], dns: DnsDefaults) -> dict[str, Any]:
    out = with_passive(row.extra, NETWORK_PASSIVE)
    out.update(
        dns_domain=(row.extra or {}).get("dns_domain", ""),  # as set; "" uses [dns] domain
        dns_service=dns.service_of(row.extra),  # effective
        id=row.id,
        name=row.name,
        vdsm_name=row.vdsm_name,
        ha_count=row.ha_count,
        dhcp_lease_time=row.dhcp_lease_time,
        mtu=row.mtu,
        admin_state_up=row.admin_state_up,
        status="ACTIVE",
        subnets=subnet_ids,
        tenant_id=row.project_id,
        project_id=row.project_id,
        description=row.description,
        availability_zones=[],
        ipv4_address_scope=None,
        ipv6_address_scope=None,
        l2_adjacency=True,
        created_at=shown(row.created_at),
        updated_at=shown(row.updated_at),
        revision_number=row.revision_number,
    )
    return out


def _subnet_ids(conn: Connection, net_ids: list[str] | None) -> dict[str, list[str]]:
    query = sa.select(subnets.c.network_id, subnets.c.id).order_by(
        subnets.c.created_at, subnets.c.id
    )
    if net_ids is not None:
        query = query.where(subnets.c.network_id.in_(net_ids))
    out: dict[str, list[str]] = {}
    for r in conn.execute(query):
        out.setdefault(r.network_id, []).append(r.id)
    return out


def _dns_updates(extra: dict[str, Any], attrs: dict[str, Any]) -> None:
    """dns_domain (canonical; "" or null: none) and dns_service (null: back to the
    [dns] service_default) into extra."""
    if "dns_domain" in attrs:
        domain = names.dns_domain(attrs["dns_domain"])
        if domain:
            extra["dns_domain"] = domain
        else:
            extra.pop("dns_domain", None)
    if "dns_service" in attrs:
        if attrs["dns_service"] is None:
            extra.pop("dns_service", None)
        else:
            extra["dns_service"] = bool(attrs["dns_service"])


def create(conn: Connection, attrs: dict[str, Any], dns: DnsDefaults) -> dict[str, Any]:
    attrs = dict(attrs)
    extra = split_passive(attrs, NETWORK_PASSIVE)
    _dns_updates(extra, attrs)
    project = project_of(attrs) or ""
    name = validators.display_name(attrs.get("name") or "", max_length=NETWORK_NAME_MAX)
    now = timestamp()
    values = {
        "id": str(uuid.uuid4()),
        "name": name,
        "vdsm_name": _bridge_for(conn, attrs, extra.get(PHYSNET), name, None),
        "mtu": _check_mtu(attrs["mtu"] if attrs.get("mtu") is not None else DEFAULT_MTU),
        "admin_state_up": attrs.get("admin_state_up", True),
        "ha_count": _check_ha(attrs["ha_count"] if attrs.get("ha_count") is not None else 1),
        "dhcp_lease_time": validators.dhcp_lease_time(attrs.get("dhcp_lease_time")),
        "project_id": project,
        "description": validators.display_name(attrs.get("description") or "", "description"),
        "extra": extra,
        "created_at": now,
        "updated_at": now,
        "revision_number": 1,
    }
    conn.execute(sa.insert(networks).values(**values))
    return view(get_row(conn, values["id"]), [], dns)


def show(conn: Connection, net_id: str, dns: DnsDefaults) -> dict[str, Any]:
    row = get_row(conn, net_id)
    return view(row, _subnet_ids(conn, [net_id]).get(net_id, []), dns)


def domains(conn: Connection, net_ids: Collection[str] | None, dns: DnsDefaults) -> dict[str, str]:
    """network id -> effective DNS domain, for the networks of a list of ports (all
    networks when None): one query, however many ports."""
    query = sa.select(networks.c.id, networks.c.extra)
    if net_ids is not None:
        query = query.where(networks.c.id.in_(list(net_ids)))
    return {r.id: dns.domain_of(r.extra) for r in conn.execute(query)}


def list_(
    conn: Connection, sql_filters: dict[str, list[Any]], dns: DnsDefaults
) -> list[dict[str, Any]]:
    query = sa.select(networks).order_by(networks.c.created_at, networks.c.id)
    for key, values in sql_filters.items():
        query = query.where(networks.c[key].in_(values))
    rows = conn.execute(query).all()
    sub = _subnet_ids(conn, None if len(rows) > 500 else [r.id for r in rows])
    return [view(r, sub.get(r.id, []), dns) for r in rows]


def update(
    conn: Connection, net_id: str, attrs: dict[str, Any], dns: DnsDefaults
) -> dict[str, Any]:
    attrs = dict(attrs)
    row = get_row(conn, net_id, lock=True)
    name = attrs.pop("name", None)  # up to 256 characters, where other names take 255
    values = standard_updates(row, attrs, NETWORK_PASSIVE)
    _dns_updates(values["extra"], attrs)
    if dns.domain_of(values["extra"]) != dns.domain_of(row.extra):
        # The ports' dns_assignment (fqdn) changed: rewriting the rows records them as
        # changed for the kept port list (migration 0004's triggers), nothing else.
        conn.execute(sa.update(ports).where(ports.c.network_id == net_id).values(name=ports.c.name))
    if name is not None:
        values["name"] = validators.display_name(name, max_length=NETWORK_NAME_MAX)
    if attrs.get("vdsm_name") is not None:
        values["vdsm_name"] = _bridge_for(conn, attrs, None, "", net_id)
    elif row.vdsm_name is None and values["extra"].get(PHYSNET) != (row.extra or {}).get(PHYSNET):
        # A network without a bridge takes one from a new provider:physical_network.
        bridge = _bridge_for(conn, {}, values["extra"].get(PHYSNET), "", net_id)
        if bridge is not None:
            values["vdsm_name"] = bridge
    if attrs.get("mtu") is not None:
        values["mtu"] = _check_mtu(attrs["mtu"])
    if attrs.get("ha_count") is not None:
        values["ha_count"] = _check_ha(attrs["ha_count"])
    if "dhcp_lease_time" in attrs:  # null: back to the DHCP agent's default
        values["dhcp_lease_time"] = validators.dhcp_lease_time(attrs["dhcp_lease_time"])
    if attrs.get("admin_state_up") is not None:
        values["admin_state_up"] = attrs["admin_state_up"]
    values.update(updated_at=timestamp(), revision_number=row.revision_number + 1)
    conn.execute(sa.update(networks).where(networks.c.id == net_id).values(**values))
    return show(conn, net_id, dns)


def delete(conn: Connection, net_id: str) -> int:
    """Delete the network (and its DHCP ports); returns its last revision_number."""
    row = get_row(conn, net_id, lock=True)
    in_use = conn.execute(
        sa.select(sa.func.count())
        .select_from(ports)
        .where(ports.c.network_id == net_id, ports.c.device_owner != DHCP_OWNER)
    ).scalar()
    if in_use:
        raise NetworkInUse(
            f"Unable to complete operation on network {net_id}. There are one or more "
            f"ports still in use on the network ({in_use})."
        )
    # DHCP ports belong to the network; they go with it (as in Neutron).
    conn.execute(sa.delete(ports).where(ports.c.network_id == net_id))
    conn.execute(sa.delete(subnets).where(subnets.c.network_id == net_id))
    conn.execute(sa.delete(networks).where(networks.c.id == net_id))
    return row.revision_number


def ha_counts(conn: Connection) -> list[dict[str, Any]]:
    """Every network's id and HA count (one light query)."""
    query = sa.select(networks.c.id, networks.c.ha_count).order_by(networks.c.id)
    return [{"id": r.id, "ha_count": r.ha_count} for r in conn.execute(query)]
