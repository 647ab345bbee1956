"""Networks: an oVirt network, its VDSM (bridge) name, its DHCP HA count and lease time."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam import validators
from ipam.attributes import (
    NETWORK_PASSIVE,
    project_of,
    shown,
    split_passive,
    standard_updates,
    timestamp,
    with_passive,
)
from ipam.contracts import DHCP_OWNER
from ipam.db.schema import networks, ports, subnets
from ipam.exceptions import InvalidInput, NetworkInUse, NetworkNotFound, VdsmNameInUse

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


def _vdsm_name_for(attrs: dict[str, Any], name: str) -> str:
    given = attrs.get("vdsm_name")
    if given is not None:
        return validators.vdsm_name(given)
    if validators.is_vdsm_name(name):
        return name  # as oVirt engine derives it
    raise InvalidInput(
        f"Invalid input for vdsm_name. Reason: name {name!r} is not a valid VDSM network "
        "name (1-15 characters of A-Z a-z 0-9 _ -, not starting with '-'), so vdsm_name "
        "must be given."
    )


def _check_vdsm_name_free(conn: Connection, vdsm_name: str, except_id: str | None = None) -> None:
    query = sa.select(networks.c.id).where(networks.c.vdsm_name == vdsm_name)
    if except_id:
        query = query.where(networks.c.id != except_id)
    other = conn.execute(query).scalar()
    if other:
        raise VdsmNameInUse(f"vdsm_name {vdsm_name} is already used by network {other}.")


_by_id = sa.select(networks).where(networks.c.id == sa.bindparam("id"))
_by_id_locked = _by_id.with_for_update()


def get_row(conn: Connection, net_id: str, lock: bool = False) -> Row:
    query = _by_id_locked if lock and conn.dialect.name == "postgresql" else _by_id
    row = conn.execute(query, {"id": net_id}).first()
    if row is None:
        raise NetworkNotFound(net_id)
    return row


def view(row: Row, subnet_ids: list[str]) -> dict[str, Any]:
    out = with_passive(row.extra, NETWORK_PASSIVE)
    out.update(
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


def create(conn: Connection, attrs: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(attrs)
    extra = split_passive(attrs, NETWORK_PASSIVE)
    project = project_of(attrs) or ""
    name = validators.display_name(attrs.get("name") or "")
    now = timestamp()
    values = {
        "id": str(uuid.uuid4()),
        "name": name,
        "vdsm_name": _vdsm_name_for(attrs, name),
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
    _check_vdsm_name_free(conn, values["vdsm_name"])
    conn.execute(sa.insert(networks).values(**values))
    return view(get_row(conn, values["id"]), [])


def show(conn: Connection, net_id: str) -> dict[str, Any]:
    row = get_row(conn, net_id)
    return view(row, _subnet_ids(conn, [net_id]).get(net_id, []))


def list_(conn: Connection, sql_filters: dict[str, list[Any]]) -> list[dict[str, Any]]:
    query = sa.select(networks).order_by(networks.c.created_at, networks.c.id)
    for key, values in sql_filters.items():
        query = query.where(networks.c[key].in_(values))
    rows = conn.execute(query).all()
    sub = _subnet_ids(conn, None if len(rows) > 500 else [r.id for r in rows])
    return [view(r, sub.get(r.id, [])) for r in rows]


def update(conn: Connection, net_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(attrs)
    row = get_row(conn, net_id, lock=True)
    values = standard_updates(row, attrs, NETWORK_PASSIVE)
    if attrs.get("vdsm_name") is not None:
        values["vdsm_name"] = validators.vdsm_name(attrs["vdsm_name"])
        _check_vdsm_name_free(conn, values["vdsm_name"], except_id=net_id)
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
    return show(conn, net_id)


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
