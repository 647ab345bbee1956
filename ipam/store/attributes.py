"""Neutron attributes this project accepts and keeps but does not act on.

oVirt engine and openstacksdk send them; refusing them would break those
clients, acting on them would promise what we do not do. They are stored in
each row's ``extra`` column and shown with these defaults when never set.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from ipam.store.validators import display_name

NETWORK_PASSIVE: dict[str, Any] = {
    "shared": False,
    "router:external": False,
    "port_security_enabled": True,
    "tags": [],
    "availability_zone_hints": [],
    "provider:network_type": None,
    "provider:physical_network": None,
    "provider:segmentation_id": None,
    "qos_policy_id": None,
    "is_default": False,
}

SUBNET_PASSIVE: dict[str, Any] = {
    "tags": [],
    "subnetpool_id": None,
    "service_types": [],
    "segment_id": None,
    "dns_publish_fixed_ip": False,
}

PORT_PASSIVE: dict[str, Any] = {
    "security_groups": [],
    "port_security_enabled": True,
    "tags": [],
    "binding:vnic_type": "normal",
    "binding:profile": {},
    "allowed_address_pairs": [],
    "qos_policy_id": None,
    "propagate_uplink_status": False,
}


def split_passive(attrs: dict[str, Any], passive: dict[str, Any]) -> dict[str, Any]:
    """Remove the passive attributes from attrs and return them, their text checked:
    kept, not acted on, but shown again to clients, so no control characters."""
    out = {k: attrs.pop(k) for k in list(attrs) if k in passive}
    for key, value in out.items():
        _check_text(key, value)
    for key in ("tenant_id", "project_id"):
        if isinstance(attrs.get(key), str):
            display_name(attrs[key], key)
    return out


def _check_text(key: str, value: Any) -> None:
    if isinstance(value, str):
        display_name(value, key)
    elif isinstance(value, list):
        for item in value:
            _check_text(key, item)
    elif isinstance(value, dict):
        for sub_key, item in value.items():
            _check_text(key, sub_key)
            _check_text(key, item)


def with_passive(extra: dict[str, Any], passive: dict[str, Any]) -> dict[str, Any]:
    """The defaults (a list or dict of each view its own) updated with extra. Runs once
    per item of a list: an empty default is made anew, not deep-copied."""
    out = dict(passive)
    for key, value in passive.items():
        if isinstance(value, list | dict):
            out[key] = copy.deepcopy(value) if value else type(value)()
    out.update(extra or {})
    return out


def project_of(attrs: dict[str, Any]) -> str | None:
    """Neutron accepts tenant_id and project_id as the same thing."""
    tenant, project = attrs.pop("tenant_id", None), attrs.pop("project_id", None)
    return project if project is not None else tenant


def timestamp() -> str:
    """Stored with microseconds so that creation order sorts stably."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shown(stored: str) -> str:
    """As Neutron shows timestamps: to the second."""
    return stored[:19] + "Z"


def standard_updates(row: Any, attrs: dict[str, Any], passive: dict[str, Any]) -> dict[str, Any]:
    """Column values for the attributes every resource shares (consumed from attrs):
    the passive ones merged into extra, project, name and description."""
    extra = dict(row.extra or {})
    extra.update(split_passive(attrs, passive))
    values: dict[str, Any] = {"extra": extra}
    project = project_of(attrs)
    if project is not None:
        values["project_id"] = project
    for key in ("name", "description"):
        if attrs.get(key) is not None:
            values[key] = display_name(attrs.pop(key), key)
    return values
