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


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """value as a CIDR without host bits, of either family (no zone: "fd00::%eth0/64")."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidInput(
            f"Invalid input for cidr. Reason: '{value}' is not a valid CIDR ({exc})."
        ) from None
    if getattr(net.network_address, "scope_id", None) is not None:
        raise InvalidInput(f"Invalid input for cidr. Reason: '{value}' is not a valid CIDR.")
    return net


def ipv4_network(value: str) -> ipaddress.IPv4Network:
    net = _network(value)
    if net.version != 4:
        raise InvalidInput("Invalid input for cidr. Reason: only IPv4 subnets are supported.")
    if net.prefixlen > 30:
        raise InvalidInput(f"Invalid input for cidr. Reason: '{value}' is too small (at most /30).")
    if net.prefixlen < 8:
        raise InvalidInput(f"Invalid input for cidr. Reason: '{value}' is too large (at least /8).")
    return net


def ipv6_network(value: str) -> ipaddress.IPv6Network:
    """An IPv6 subnet: /64 to /126 (a /64 is what SLAAC needs; an address is stored as
    its offset in a /64 at most), not ::, multicast, loopback or link-local."""
    net = _network(value)
    if net.version != 6:
        raise InvalidInput(f"Invalid input for cidr. Reason: {value} does not match ip_version 6.")
    if net.network_address == ipaddress.IPv6Address("::"):
        raise InvalidInput("IPv6 subnet '::' is not supported")
    if net.is_multicast or net.is_loopback or net.is_link_local:
        raise InvalidInput(
            f"Invalid input for cidr. Reason: {net} is a multicast, loopback or link-local prefix."
        )
    if net.prefixlen > 126:
        raise InvalidInput(
            "Subnet has a prefix length that is incompatible with DHCP service enabled"
        )
    if net.prefixlen < 64:
        raise InvalidInput(
            f"Invalid input for cidr. Reason: '{value}' is too large (at least /64)."
        )
    return net


def ip_network(value: str, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if version == 6:
        return ipv6_network(value)
    try:
        parsed = ipaddress.ip_network(value, strict=False)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.version == 6:
        raise InvalidInput(f"Invalid input for cidr. Reason: {value} does not match ip_version 4.")
    return ipv4_network(value)


def _address(value: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidInput(
            f"Invalid input for {field}. Reason: '{value}' is not a valid IP address."
        ) from None
    if getattr(ip, "scope_id", None) is not None:  # "fd00::1%eth0": no zone names here
        raise InvalidInput(
            f"Invalid input for {field}. Reason: '{value}' is not a valid IP address."
        )
    return ip


def ip_address(
    value: str, version: int | None, field: str = "ip_address"
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of the given family (None: of either); link-local and multicast
    ones are refused (no port, gateway, DNS server or next hop of a subnet can be one)."""
    ip = _address(value, field)
    if (version or ip.version) == 4:
        return _only_ipv4(ip, value, field)
    if ip.version != 6:
        raise InvalidInput(f"Invalid input for {field}. Reason: {value} is not an IPv6 address.")
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        raise InvalidInput(
            f"Invalid input for {field}. Reason: {value} is a link-local, multicast or "
            "unspecified address."
        )
    return ip


def ipv4_address(value: str, field: str = "ip_address") -> ipaddress.IPv4Address:
    return _only_ipv4(_address(value, field), value, field)


def _only_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, value: str, field: str
) -> ipaddress.IPv4Address:
    if not isinstance(ip, ipaddress.IPv4Address):
        raise InvalidInput(f"Invalid input for {field}. Reason: only IPv4 is supported.")
    return ip
