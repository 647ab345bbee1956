"""What a VM is told beyond its address: the rules for names (a port's ``dns_name``,
a network's ``dns_domain``) and the allow-list of per-port ``extra_dhcp_opts``.

The engine's API and the bus contracts both check with these functions, so a value
that reaches a dnsmasq file has passed the same rule twice. Each rule is strict
enough that the value can be written into a dnsmasq file as it is: no comma (except
as a list separator), quote, backslash, '#', space or control character.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: RFC 1123 label: letters, digits and '-', not at either end, 1-63 characters.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: What dnsmasq reads in a dhcp-host or dhcp-option field as a lease time, a number
#: (``12b``: one byte) or a keyword rather than as a name.
_DNSMASQ_WORD = re.compile(r"[0-9]+[smhdwbi]?|infinite|ignore")
DOMAIN_MAX = 253
LABEL_RULE = (
    "1-63 characters of a-z, 0-9 and '-', not starting or ending with '-', and not all digits"
)
DOMAIN_RULE = "empty, or a fully qualified domain name ending with '.' (such as 'example.org.')"


class OptionError(ValueError):
    """A name or a DHCP option that is refused; the text says why."""


def dns_label(value: object) -> str:
    """A port's dns_name: one RFC 1123 label, lower-cased (Neutron does the same).

    All-digit labels are refused: RFC 1123 keeps them from top-level names, and
    dnsmasq would read one (``300``, ``5m``) as a lease time.
    """
    if not isinstance(value, str):
        raise OptionError(f"{_shown(value)} is not a DNS name: {LABEL_RULE}")
    label = value.lower()
    if not _LABEL.fullmatch(label) or _DNSMASQ_WORD.fullmatch(label) or label.isdigit():
        raise OptionError(f"{_shown(value)} is not a valid DNS name: {LABEL_RULE}")
    return label


def dns_domain(value: object) -> str:
    """A network's dns_domain: "" or an FQDN ending with '.', lower-cased."""
    if value == "":
        return ""
    if not isinstance(value, str) or not value.endswith(".") or len(value) > DOMAIN_MAX:
        raise OptionError(f"{_shown(value)} is not a valid DNS domain: {DOMAIN_RULE}")
    labels = value[:-1].lower().split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise OptionError(f"{_shown(value)} is not a valid DNS domain: {DOMAIN_RULE}")
    return ".".join(labels) + "."


def _shown(value: object) -> str:
    return repr(value)[:60]


# -- extra_dhcp_opts -----------------------------------------------------------------

_SAFE = re.compile(r"[A-Za-z0-9._~:/?&=+%@!$*()\[\]-]+")
BOOTFILE_MAX = 127  # the BOOTP file field holds 128 bytes, NUL included


def _path(value: str) -> str:
    """A boot file: a path or URL, written verbatim into dnsmasq's file."""
    if not _SAFE.fullmatch(value) or len(value) > BOOTFILE_MAX:
        raise OptionError(
            f"{_shown(value)} is not a boot file name: 1-{BOOTFILE_MAX} characters of "
            "letters, digits and ._~:/?&=+%@!$*()[]- (no comma, quote, space or '#')"
        )
    return value


def _url(value: str, schemes: tuple[str, ...]) -> str:
    _path(value)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise OptionError(f"{_shown(value)} is not a {'/'.join(schemes)} URL")
    return value


def _http_url(value: str) -> str:
    return _url(value, ("http", "https"))


def _boot_url6(value: str) -> str:
    return _url(value, ("tftp", "http", "https"))


def _ipv4(value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise OptionError(f"{_shown(value)} is not an IPv4 address") from None
    if str(address) != value:
        raise OptionError(f"{_shown(value)} is not an IPv4 address in canonical form")
    return value


def _ipv6(value: str) -> str:
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        raise OptionError(f"{_shown(value)} is not an IPv6 address") from None
    if address.scope_id is not None or str(address) != value:
        raise OptionError(f"{_shown(value)} is not an IPv6 address in canonical form")
    return value


def _hostname(value: str) -> str:
    """A server name: an IPv4 address or a host name (labels, no final dot)."""
    try:
        return _ipv4(value)
    except OptionError:
        pass
    labels = value.lower().split(".")
    if len(value) > DOMAIN_MAX or not all(_LABEL.fullmatch(label) for label in labels):
        raise OptionError(f"{_shown(value)} is neither an IPv4 address nor a host name")
    return value.lower()


def _domain_name(value: str) -> str:
    name = value.rstrip(".")
    labels = name.lower().split(".")
    if not name or len(name) > DOMAIN_MAX or not all(_LABEL.fullmatch(x) for x in labels):
        raise OptionError(f"{_shown(value)} is not a domain name")
    return name.lower()


def _list_of(check: Callable[[str], str], most: int = 8) -> Callable[[str], str]:
    def checked(value: str) -> str:
        items = value.split(",")
        if not 1 <= len(items) <= most:
            raise OptionError(f"{_shown(value)}: give 1 to {most} values separated by ','")
        return ",".join(check(item.strip()) for item in items)

    return checked


def _mtu(value: str) -> str:
    if not value.isdigit() or not 68 <= int(value) <= 65535:
        raise OptionError(f"{_shown(value)} is not an MTU (an integer from 68 to 65535)")
    return str(int(value))


#: Tags the agent's dnsmasq sets from what a client says it is (dnsmasq.conf.j2).
IPXE_TAG, HTTPBOOT_TAG = "ipxe", "httpboot"


@dataclass(frozen=True)
class Spelling:
    """How an option reaches dnsmasq for one IP version."""

    option: str  # dnsmasq's name: option:bootfile-name, option6:bootfile-url, ...
    check: Callable[[str], str]
    #: Client tags this line also needs (iPXE, UEFI HTTP boot) or must not have.
    when: tuple[str, ...] = ()
    brackets: bool = False  # IPv6 addresses in dnsmasq's [addr] form


_PLAIN_BOOT = (f"!{IPXE_TAG}", f"!{HTTPBOOT_TAG}")

#: name -> {ip_version: Spelling}. Anything else is refused, naming the option.
CATALOG: dict[str, dict[int, Spelling]] = {
    "bootfile-name": {
        4: Spelling("option:bootfile-name", _path, _PLAIN_BOOT),
        6: Spelling("option6:bootfile-url", _boot_url6),
    },
    "ipxe-bootfile-name": {4: Spelling("option:bootfile-name", _path, (IPXE_TAG,))},
    "http-boot-url": {4: Spelling("option:bootfile-name", _http_url, (HTTPBOOT_TAG,))},
    "tftp-server": {4: Spelling("option:tftp-server", _hostname)},
    "server-ip-address": {4: Spelling("option:server-ip-address", _ipv4)},
    "ntp-server": {
        4: Spelling("option:ntp-server", _list_of(_ipv4)),
        6: Spelling("option6:sntp-server", _list_of(_ipv6), brackets=True),
    },
    "domain-search": {
        4: Spelling("option:domain-search", _list_of(_domain_name, 6)),
        6: Spelling("option6:domain-search", _list_of(_domain_name, 6)),
    },
    # Sent to clients that ask for option 26: dnsmasq cannot force an option it reads
    # from --dhcp-optsdir, and this one outranks the network's forced MTU.
    "mtu": {4: Spelling("option:mtu", _mtu)},
}

#: Other spellings clients use (Neutron's option numbers, Ironic's tagged names).
ALIASES = {
    "67": "bootfile-name",
    "bootfile-url": "bootfile-name",
    "66": "tftp-server",
    "42": "ntp-server",
    "119": "domain-search",
    "26": "mtu",
    "tag:ipxe,bootfile-name": "ipxe-bootfile-name",
    "tag:ipxe,67": "ipxe-bootfile-name",
    "tag:!ipxe,bootfile-name": "bootfile-name",
    "tag:!ipxe,67": "bootfile-name",
}
NAMES_RULE = ", ".join(sorted(CATALOG))


def option_name(name: object, ip_version: int = 4) -> str:
    """The canonical name of an allowed option for this IP version."""
    canonical = ALIASES.get(name, name) if isinstance(name, str) else None
    if canonical not in CATALOG:
        raise OptionError(f"DHCP option {_shown(name)} is not supported; supported: {NAMES_RULE}")
    assert isinstance(canonical, str)
    if ip_version not in CATALOG[canonical]:
        raise OptionError(f"DHCP option {canonical!r} has no IPv{ip_version} form")
    return canonical


def option_value(name: str, value: object, ip_version: int = 4) -> str:
    """The value of option ``name`` (canonical), checked and in canonical form."""
    if not isinstance(value, str) or not value:
        raise OptionError(f"the value of DHCP option {name!r} must be a non-empty string")
    try:
        return CATALOG[name][ip_version].check(value)
    except OptionError as exc:
        raise OptionError(f"DHCP option {name!r}: {exc}") from None
