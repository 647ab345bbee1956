"""List filters as Neutron applies them: ``?key=v1&key=v2`` means key in (v1, v2)."""

from __future__ import annotations

from typing import Any

_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def _match(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return any((w.lower() in _TRUE) == value and w.lower() in _TRUE | _FALSE for w in wanted)
    if isinstance(value, list):
        return any(str(v) in wanted for v in value if not isinstance(v, dict))
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    return str(value) in wanted


def fixed_ip_filter(item: dict[str, Any], wanted: list[str]) -> bool:
    """``fixed_ips=ip_address=X`` / ``fixed_ips=subnet_id=Y`` as Neutron accepts them."""
    for spec in wanted:
        key, _, value = spec.partition("=")
        if not any(str(f.get(key)) == value for f in item.get("fixed_ips", [])):
            return False
    return True


def apply(items: list[dict[str, Any]], filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    out = items
    for key, wanted in filters.items():
        if key == "fixed_ips":
            out = [i for i in out if fixed_ip_filter(i, wanted)]
        else:
            out = [i for i in out if _match(i.get(key), wanted)]
    return out
