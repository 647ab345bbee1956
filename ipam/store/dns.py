"""Names and per-port DHCP options as the store keeps and shows them (issue 16).

The REST API brings values to their canonical form with ipam.bus.dhcp_options (the
alias "67" becomes "bootfile-name", names are lower-cased); the store checks them
again with the bus contracts (DnsLabel, DnsDomain, DhcpOpt), which accept only that
form: what the store keeps is exactly what an agent accepts, so a stored value never
stops a port or network from reaching its DHCP servers. Refusals are Neutron's 400
InvalidInput. This module also holds the engine's DNS defaults and the merge of
extra_dhcp_opts.

- A port's ``dns_name`` is served (DHCP option 12, DNS records) only from the
  ``ports.dns_name`` column; a legacy value that migration 0008 left in ``extra``
  (invalid, or a duplicate in its network) is shown but not served, and its
  ``dns_assignment`` is empty. So ``dns_assignment`` is what the servers give out.
- A network's ``dns_domain`` is kept in its ``extra`` as set (canonical); the
  effective domain is it, else the configured ``[dns] domain``.
- ``extra_dhcp_opts`` are kept canonical in the port's ``extra`` and shown as kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ipam.bus.contracts import MAX_DHCP_OPTS, DhcpOpt, DnsDomain, DnsLabel
from ipam.exceptions import InvalidInput

_LABEL: TypeAdapter[str] = TypeAdapter(DnsLabel)
_DOMAIN: TypeAdapter[str] = TypeAdapter(DnsDomain)


def _reason(exc: ValidationError) -> str:
    """The rule's own words (ipam.bus.dhcp_options), without pydantic's framing."""
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())


#: [dns] domain's default (ipam.config): the domain of networks that set none.
DEFAULT_DOMAIN = "ovirtlocal."
OPTS = "extra_dhcp_opts"


@dataclass(frozen=True)
class DnsDefaults:
    """The engine's [dns] configuration as the store applies it."""

    domain: str = DEFAULT_DOMAIN  # canonical (dhcp_options.dns_domain), "" for none
    service: bool = False  # whether networks that do not set dns_service get DNS

    def domain_of(self, net: dict[str, Any] | None) -> str:
        """The effective domain of a network from its ``extra`` (or its view): its own
        dns_domain when it is a valid one, else the default. A value stored before
        dns_domain was checked and that fails the rule is shown but never served."""
        own = (net or {}).get("dns_domain")
        if own and isinstance(own, str):
            try:
                return _DOMAIN.validate_python(own.lower())
            except ValidationError:
                pass
        return self.domain

    def service_of(self, net_extra: dict[str, Any] | None) -> bool:
        """Whether the network gets the DNS service: its own setting, else the default."""
        own = (net_extra or {}).get("dns_service")
        return own if isinstance(own, bool) else self.service


def dns_name(value: object) -> str | None:
    """A port's dns_name as stored: a canonical label, or None for "" or null."""
    if value is None or value == "":
        return None
    try:
        return _LABEL.validate_python(value, strict=True)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid input for dns_name. Reason: {_reason(exc)}.") from None


def dns_domain(value: object) -> str:
    """A network's dns_domain as stored: canonical, "" for none (also for null)."""
    if value is None or value == "":
        return ""
    try:
        return _DOMAIN.validate_python(value, strict=True)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid input for dns_domain. Reason: {_reason(exc)}.") from None


def fqdn(name: str, domain: str) -> str:
    """name.domain.; with no domain at all, the name as an absolute name (Neutron)."""
    return f"{name}.{domain}" if domain else f"{name}."


def assignment(name: str | None, domain: str, fixed_ips: list[dict[str, str]]) -> list[dict]:
    """Neutron's dns_assignment: one entry per fixed IP of a named port, else []."""
    if not name:
        return []
    full = fqdn(name, domain)
    return [{"hostname": name, "ip_address": f["ip_address"], "fqdn": full} for f in fixed_ips]


# -- extra_dhcp_opts ----------------------------------------------------------------------


def _invalid(reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid input for {OPTS}. Reason: {reason}.")


def _entry(raw: object) -> tuple[tuple[str, int], str | None]:
    """((name, ip_version), value or None to remove it) of one canonical entry."""
    if not isinstance(raw, dict) or set(raw) - {"opt_name", "opt_value", "ip_version"}:
        raise _invalid(f"{repr(raw)[:60]} is not an object of opt_name, opt_value, ip_version")
    version = raw.get("ip_version", 4)
    if raw.get("opt_value") is None:  # a removal: nothing is kept of it
        if not isinstance(raw.get("opt_name"), str) or version not in (4, 6):
            raise _invalid(f"{repr(raw)[:60]} names no DHCP option")
        return (raw["opt_name"], version), None
    try:
        opt = DhcpOpt.model_validate({**raw, "ip_version": version})
    except ValidationError as exc:
        raise _invalid(_reason(exc)) from None
    return (opt.opt_name, opt.ip_version), opt.opt_value


def dhcp_opts(requested: list[Any], current: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The port's options after a create (current None: the request is the list) or
    an update (Neutron's merge: an entry replaces the option of its name and IP
    version, one with opt_value null removes it, the others stay), each checked."""
    if not isinstance(requested, list):
        raise _invalid("a list of {opt_name, opt_value, ip_version} is expected")
    wanted: dict[tuple[str, int], str | None] = {}
    for raw in requested:
        key, value = _entry(raw)
        if key in wanted:
            raise _invalid(f"DHCP option {key[0]!r} (IPv{key[1]}) is given more than once")
        wanted[key] = value
    merged: dict[tuple[str, int], str] = {
        (o["opt_name"], o["ip_version"]): o["opt_value"] for o in current or []
    }
    for key, value in wanted.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_DHCP_OPTS:
        raise _invalid(f"a port has at most {MAX_DHCP_OPTS} DHCP options, not {len(merged)}")
    return [{"opt_name": n, "opt_value": v, "ip_version": ver} for (n, ver), v in merged.items()]
