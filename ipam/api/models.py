"""Request bodies of the REST API. Unknown attributes are refused (Neutron does the
same); attributes Neutron defines but we do not act on are accepted and kept.
The OpenAPI document is generated from these models.

Where Neutron converts a value before checking it (neutron-lib's ``convert_to_int``,
``convert_to_boolean``), so do we: python-openstackclient sends ``--mtu 1400`` as
the string "1400". A value that does not convert is refused as Neutron refuses it
(400, ``InvalidInput``). Two deliberate differences: what Python's ``int()`` would
silently alter (``1.5`` -> 1, ``true`` -> 1) is refused rather than truncated, and
our own integer attributes (``ha_count``, ``dhcp_lease_time``) convert like
Neutron's.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from ipam.bus import dhcp_options
from ipam.bus.contracts import LEASE_TIME_INFINITE, LEASE_TIME_MAX, LEASE_TIME_MIN, LEASE_TIME_RULE
from ipam.store.validators import NETWORK_NAME_MAX

Name = str
_S = Field(default=None, max_length=255)
_LIST = Field(default=None, max_length=64)
#: Attributes whose null a client sends on purpose (an update back to the default, or
#: a name cleared).
_NULL_IS_A_VALUE = {"gateway_ip", "dhcp_lease_time", "dns_service", "dns_domain", "dns_name"}
#: The error type of a value that does not convert (ipam.api.errors: InvalidInput).
CONVERSION_ERROR = "neutron_conversion"
#: oVirt engine's Java client binds provider:segmentation_id as an Integer.
JAVA_INT_MAX = 2**31 - 1

_DECIMAL = re.compile(r"^\s*[+-]?[0-9]+\s*$")
#: oslo.utils' strutils.bool_from_string (strict), as neutron-lib's convert_to_boolean.
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    try:
        return json.dumps(value)[:40]
    except (TypeError, ValueError):
        return repr(value)[:40]


def _refuse(reason: str) -> PydanticCustomError:
    # The reason is given as a context value: braces in it are not a template.
    return PydanticCustomError(CONVERSION_ERROR, "{reason}", {"reason": reason})


def to_int(value: Any) -> Any:
    """neutron-lib's convert_to_int for what it converts faithfully: integers and
    decimal strings. Booleans and floats are refused, not truncated."""
    if value is None or type(value) is int:
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    raise _refuse(f"{_shown(value)} is not an integer")


def to_bool(value: Any) -> Any:
    """neutron-lib's convert_to_boolean: true/false, 1/0 and their string forms."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str | int) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise _refuse(f"{_shown(value)} cannot be converted to boolean")


def _lease_time(value: Any) -> Any:
    try:
        return to_int(value)
    except PydanticCustomError:
        raise _refuse(f"{_shown(value)} is not allowed: it must be {LEASE_TIME_RULE}") from None


def _none_is_empty_list(value: Any) -> Any:
    """neutron-lib's convert_none_to_empty_list (security_groups: oVirt engine sends
    null on purpose when a vNIC profile has no security groups)."""
    return [] if value is None else value


def _string_map(value: Any) -> Any:
    """binding:profile: oVirt engine's Java client binds it as Map<String, String>,
    and one port with another value would make the whole port list unreadable to it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str):
                raise ValueError(
                    f"the value of {key!r} is {_shown(item)}: binding:profile values must be "
                    "strings (oVirt engine reads binding:profile as a map of strings)"
                )
    return value


def _dns_name(value: Any) -> Any:
    """A port's dns_name lower-cased as Neutron does, checked (dhcp_options.dns_label)."""
    if value is None or value == "":
        return value
    try:
        return dhcp_options.dns_label(value)
    except dhcp_options.OptionError as exc:
        raise _refuse(str(exc)) from None


def _dns_domain(value: Any) -> Any:
    """A network's dns_domain: "" or an FQDN ending with '.', lower-cased."""
    if value is None:
        return value
    try:
        return dhcp_options.dns_domain(value)
    except dhcp_options.OptionError as exc:
        raise _refuse(str(exc)) from None


def _opt_ip_version(value: Any) -> int:
    """4 (the default) or 6, also as the strings python-openstackclient sends."""
    if value is None:
        return 4
    if (type(value) is int and value in (4, 6)) or value in ("4", "6"):
        return int(value)
    raise _refuse(f"ip_version {_shown(value)} is not 4 or 6")


def _dhcp_opts(value: Any) -> Any:
    """Neutron's extra_dhcp_opts with each name and value in canonical form (the alias
    "67" becomes "bootfile-name"); a name not allowed, or a value not of its option's
    kind, is refused naming the option. The store merges and checks them again."""
    if not isinstance(value, list):
        return value  # not a list: refused by the schema
    out = []
    for raw in value:
        if not isinstance(raw, dict):
            out.append(raw)  # refused by the schema
            continue
        version = _opt_ip_version(raw.get("ip_version"))
        try:
            name = dhcp_options.option_name(raw.get("opt_name"), version)
            opt_value = raw.get("opt_value")
            if opt_value is not None:
                opt_value = dhcp_options.option_value(name, opt_value, version)
        except dhcp_options.OptionError as exc:
            raise _refuse(str(exc)) from None
        out.append({**raw, "opt_name": name, "opt_value": opt_value, "ip_version": version})
    return out


_INT_SCHEMA = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string", "pattern": _DECIMAL.pattern},
        {"type": "null"},
    ]
}
_BOOL_SCHEMA = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "enum": sorted(_TRUE | _FALSE)},
        {"type": "integer", "enum": [0, 1]},
        {"type": "null"},
    ]
}
#: An integer as Neutron converts it (convert_to_int); the store checks the range.
NInt = Annotated[int | None, BeforeValidator(to_int), WithJsonSchema(_INT_SCHEMA)]
#: A boolean as Neutron converts it (convert_to_boolean).
NBool = Annotated[bool | None, BeforeValidator(to_bool), WithJsonSchema(_BOOL_SCHEMA)]

LeaseTime = Annotated[
    int | None,
    BeforeValidator(_lease_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": LEASE_TIME_MIN, "maximum": LEASE_TIME_MAX},
                {"type": "integer", "enum": [LEASE_TIME_INFINITE]},
                {"type": "string", "pattern": _DECIMAL.pattern},
                {"type": "null"},
            ]
        }
    ),
]
SecurityGroups = Annotated[list[str] | None, BeforeValidator(_none_is_empty_list)]
DnsName = Annotated[
    str | None, BeforeValidator(_dns_name), WithJsonSchema({"type": ["string", "null"]})
]
DnsDomainText = Annotated[
    str | None, BeforeValidator(_dns_domain), WithJsonSchema({"type": ["string", "null"]})
]
StringMap = Annotated[dict[str, str] | None, BeforeValidator(_string_map)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def attrs(self) -> dict[str, Any]:
        """The attributes the client set, by their Neutron names; null means unset
        (except for _NULL_IS_A_VALUE)."""
        data = self.model_dump(exclude_unset=True, by_alias=True)
        return {k: v for k, v in data.items() if v is not None or k in _NULL_IS_A_VALUE}


class NetworkAttrs(_Body):
    name: str | None = Field(
        default=None,
        max_length=NETWORK_NAME_MAX,
        description="Free text, up to 256 characters (as oVirt names networks).",
    )
    vdsm_name: str | None = Field(
        default=None,
        max_length=15,
        description="Bridge name of the network on the hosts (VDSM's name). Absent: "
        "provider:physical_network when it is a valid VDSM name, else the name when it is "
        "one (and no other network has it); otherwise the network has no bridge (null) and "
        "no DHCP server until vdsm_name is set.",
    )
    ha_count: NInt = Field(
        default=None, description="How many hosts run a DHCP server for this network (0: none)."
    )
    dhcp_lease_time: LeaseTime = Field(
        default=None,
        description="DHCP lease time in seconds, from 120 to 2147483647; -1: infinite; "
        "null or absent: the DHCP agent's [dhcp_agent] lease_time (an update to null goes "
        "back to it).",
    )
    mtu: NInt = None
    admin_state_up: NBool = None
    description: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = _S
    project_id: str | None = _S
    shared: NBool = None
    router_external: NBool = Field(default=None, alias="router:external")
    port_security_enabled: NBool = None
    tags: list[str] | None = _LIST
    availability_zone_hints: list[str] | None = _LIST
    provider_network_type: str | None = Field(
        default=None, alias="provider:network_type", max_length=255
    )
    provider_physical_network: str | None = Field(
        default=None,
        alias="provider:physical_network",
        max_length=255,
        description="oVirt engine sends the VDSM name of the physical oVirt network a "
        "network is linked to: it becomes the bridge when vdsm_name is not given.",
    )
    provider_segmentation_id: NInt = Field(
        default=None, alias="provider:segmentation_id", ge=0, le=JAVA_INT_MAX
    )
    dns_domain: DnsDomainText = Field(
        default=None,
        description="DNS domain of the network's ports: a fully qualified name ending with "
        "'.' (lower-cased); \"\" or null: the engine's [dns] domain.",
    )
    dns_service: NBool = Field(
        default=None,
        description="Whether the network's DHCP servers answer DNS for its ports (and "
        "forward other names to the subnets' dns_nameservers); null: the engine's [dns] "
        "service_default.",
    )
    qos_policy_id: str | None = _S
    is_default: NBool = None


class AllocationPool(_Body):
    start: str = Field(max_length=39)
    end: str = Field(max_length=39)


class HostRoute(_Body):
    destination: str = Field(max_length=43)
    nexthop: str = Field(max_length=39)


class SubnetAttrs(_Body):
    name: str | None = _S
    network_id: str | None = Field(default=None, max_length=36)
    cidr: str | None = Field(default=None, max_length=43)
    ip_version: NInt = Field(default=None, description="4 (the default) or 6.")
    gateway_ip: str | None = Field(
        default=None, max_length=39, description='null or "": no gateway.'
    )
    allocation_pools: list[AllocationPool] | None = _LIST
    dns_nameservers: list[str] | None = _LIST
    host_routes: list[HostRoute] | None = _LIST
    enable_dhcp: NBool = None
    description: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = _S
    project_id: str | None = _S
    tags: list[str] | None = _LIST
    ipv6_ra_mode: str | None = Field(
        default=None, max_length=16, description="slaac, dhcpv6-stateful, dhcpv6-stateless"
    )
    ipv6_address_mode: str | None = Field(
        default=None, max_length=16, description="slaac, dhcpv6-stateful, dhcpv6-stateless"
    )
    subnetpool_id: str | None = _S
    service_types: list[str] | None = _LIST
    segment_id: str | None = _S
    dns_publish_fixed_ip: NBool = None


class ExtraDhcpOpt(_Body):
    """One of Neutron's extra_dhcp_opts, in canonical form (_dhcp_opts made it so)."""

    opt_name: str = Field(
        max_length=64,
        description="bootfile-name (67), ipxe-bootfile-name, http-boot-url, tftp-server "
        "(66), server-ip-address, ntp-server (42), domain-search (119) or mtu (26).",
    )
    opt_value: str | None = Field(
        default=None, max_length=255, description="null (in an update): remove the option."
    )
    ip_version: Annotated[
        int,
        WithJsonSchema({"anyOf": [{"enum": [4, 6]}, {"enum": ["4", "6"]}, {"type": "null"}]}),
    ] = Field(default=4, description="4 (the default) or 6.")


ExtraDhcpOpts = Annotated[list[ExtraDhcpOpt] | None, BeforeValidator(_dhcp_opts)]


class FixedIp(_Body):
    subnet_id: str | None = Field(default=None, max_length=36)
    ip_address: str | None = Field(default=None, max_length=39)


class PortAttrs(_Body):
    name: str | None = _S
    network_id: str | None = Field(default=None, max_length=36)
    mac_address: str | None = Field(default=None, max_length=17)
    fixed_ips: list[FixedIp] | None = Field(default=None, max_length=16)
    device_id: str | None = _S
    device_owner: str | None = _S
    binding_host_id: str | None = Field(default=None, alias="binding:host_id", max_length=255)
    admin_state_up: NBool = None
    description: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = _S
    project_id: str | None = _S
    security_groups: SecurityGroups = Field(
        default=None, max_length=64, description="null: none (as Neutron converts it)."
    )
    port_security_enabled: NBool = None
    tags: list[str] | None = _LIST
    binding_vnic_type: str | None = Field(default=None, alias="binding:vnic_type", max_length=32)
    binding_profile: StringMap = Field(
        default=None,
        alias="binding:profile",
        description="A map of strings (oVirt engine reads it as Map<String, String>).",
    )
    allowed_address_pairs: list[dict[str, Any]] | None = _LIST
    dns_name: DnsName = Field(
        default=None,
        description="The port's hostname: an RFC 1123 label (lower-cased), unique among "
        'the ports of its network; "" or null: none.',
    )
    extra_dhcp_opts: ExtraDhcpOpts = Field(
        default=None,
        max_length=64,
        description="DHCP options of the port (Neutron's extra_dhcp_opt). An update "
        "merges by opt_name and ip_version; opt_value null removes an option.",
    )
    qos_policy_id: str | None = _S
    propagate_uplink_status: NBool = None


class NetworkBody(_Body):
    network: NetworkAttrs


class SubnetBody(_Body):
    subnet: SubnetAttrs


class PortBody(_Body):
    port: PortAttrs


# Keystone-style identity (v2.0 as oVirt engine's provider client speaks it, and v3).
class PasswordCredentials(BaseModel):
    username: str = Field(max_length=255)
    password: str = Field(max_length=4096)


class V2Auth(BaseModel):
    passwordCredentials: PasswordCredentials | None = None
    tenantName: str | None = None
    tenantId: str | None = None


class V2TokenBody(BaseModel):
    auth: V2Auth


class V3TokenBody(BaseModel):
    auth: dict[str, Any]
