"""Validation of everything a user types that may later reach a file, a command
line, an interface name or a path (DESIGN.md, Invariants)."""

from __future__ import annotations

import ipaddress
import unicodedata
import uuid

from ipam.bus.contracts import LEASE_TIME_RULE, VDSM_NAME_RULE, is_lease_time, is_mac, is_vdsm_name
from ipam.exceptions import InvalidInput

NAME_MAX = 255
#: oVirt's network names (BusinessEntitiesDefinitions.NETWORK_NAME_SIZE): oVirt engine
#: creates provider networks under the oVirt network's name.
NETWORK_NAME_MAX = 256


def vdsm_name(value: str) -> str:
    if not is_vdsm_name(value):
        raise InvalidInput(
            f"Invalid input for vdsm_name. Reason: {value!r} is not a VDSM network name "
            f"({VDSM_NAME_RULE})."
        )
    return value


def display_name(value: str, field: str = "name", max_length: int = NAME_MAX) -> str:
    """Free-text names are kept, never used in a file or command; bound them anyway."""
    if len(value) > max_length:
        raise InvalidInput(
            f"Invalid input for {field}. Reason: longer than {max_length} characters."
        )
    # Cc: C0, DEL and C1 (NEL) controls; Zl, Zp: Unicode line and paragraph separators.
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise InvalidInput(f"Invalid input for {field}. Reason: control characters.")
    return value


def dhcp_lease_time(value: object) -> int | None:
    """A network's DHCP lease time: it reaches dnsmasq's configuration."""
    if not is_lease_time(value):
        raise InvalidInput(
            f"Invalid input for dhcp_lease_time. Reason: {repr(value)[:40]} is not allowed: "
            f"it must be {LEASE_TIME_RULE}."
        )
    return value


def mac_address(value: str) -> str:
    """Normalise a unicast MAC to lower-case colon form."""
    mac = value.strip().lower().replace("-", ":") if isinstance(value, str) else ""
    if not is_mac(mac):
        raise InvalidInput(f"Invalid input for mac_address. Reason: '{value}' is not a valid MAC.")
    first = int(mac[:2], 16)
    if first & 1:
        raise InvalidInput(f"Invalid input for mac_address. Reason: '{value}' is a multicast MAC.")
    if mac == "00:00:00:00:00:00":
        raise InvalidInput("Invalid input for mac_address. Reason: all-zero MAC.")
    return mac


def base_mac_prefix(value: str) -> str:
    """The first three octets of [DEFAULT] base_mac, checked."""
    mac = mac_address(value)
    return mac[:8]


def uuid_str(value: str, field: str = "id") -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInput(f"Invalid input for {field}. Reason: '{value}' is not a UUID.") from None


def ipv4_network(value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidInput(
            f"Invalid input for cidr. Reason: '{value}' is not a valid CIDR ({exc})."
        ) from None
    if net.version != 4:
        raise InvalidInput("Invalid input for cidr. Reason: only IPv4 subnets are supported.")
    if net.prefixlen > 30:
        raise InvalidInput(f"Invalid input for cidr. Reason: '{value}' is too small (at most /30).")
    if net.prefixlen < 8:
        raise InvalidInput(f"Invalid input for cidr. Reason: '{value}' is too large (at least /8).")
    return net


def ipv4_address(value: str, field: str = "ip_address") -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidInput(
            f"Invalid input for {field}. Reason: '{value}' is not a valid IP address."
        ) from None
    if ip.version != 4:
        raise InvalidInput(f"Invalid input for {field}. Reason: only IPv4 is supported.")
    return ip
