"""Request bodies of the REST API. Unknown attributes are refused (Neutron does the
same); attributes Neutron defines but we do not act on are accepted and kept.
The OpenAPI document is generated from these models."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, WithJsonSchema

from ipam.contracts import LEASE_TIME_INFINITE, LEASE_TIME_MAX, LEASE_TIME_MIN, LEASE_TIME_RULE

Name = str
_S = Field(default=None, max_length=255)
_LIST = Field(default=None, max_length=64)
#: Attributes whose null a client sends on purpose (an update back to the default).
_NULL_IS_A_VALUE = {"gateway_ip", "dhcp_lease_time"}


def _integer_or_null(value: Any) -> Any:
    """Refuse the wrong types with the rule (bool is no integer here); the store checks
    the range, as it does for every client."""
    if value is not None and type(value) is not int:
        raise ValueError(f"must be {LEASE_TIME_RULE}")
    return value


LeaseTime = Annotated[
    StrictInt | None,
    BeforeValidator(_integer_or_null),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": LEASE_TIME_MIN, "maximum": LEASE_TIME_MAX},
                {"type": "integer", "enum": [LEASE_TIME_INFINITE]},
                {"type": "null"},
            ]
        }
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def attrs(self) -> dict[str, Any]:
        """The attributes the client set, by their Neutron names; null means unset
        (except for _NULL_IS_A_VALUE)."""
        data = self.model_dump(exclude_unset=True, by_alias=True)
        return {k: v for k, v in data.items() if v is not None or k in _NULL_IS_A_VALUE}


class NetworkAttrs(_Body):
    name: str | None = _S
    vdsm_name: str | None = Field(
        default=None,
        max_length=15,
        description="Bridge name of the network on the hosts (VDSM's name); defaults to name "
        "when name is a valid VDSM name.",
    )
    ha_count: StrictInt | None = Field(
        default=None, description="How many hosts run a DHCP server for this network (0: none)."
    )
    dhcp_lease_time: LeaseTime = Field(
        default=None,
        description="DHCP lease time in seconds, from 120 to 2147483647; -1: infinite; "
        "null or absent: the DHCP agent's [dhcp_agent] lease_time (an update to null goes "
        "back to it).",
    )
    mtu: StrictInt | None = None
    admin_state_up: bool | None = None
    description: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = _S
    project_id: str | None = _S
    shared: bool | None = None
    router_external: bool | None = Field(default=None, alias="router:external")
    port_security_enabled: bool | None = None
    tags: list[str] | None = _LIST
    availability_zone_hints: list[str] | None = _LIST
    provider_network_type: str | None = Field(default=None, alias="provider:network_type")
    provider_physical_network: str | None = Field(default=None, alias="provider:physical_network")
    provider_segmentation_id: StrictInt | None = Field(
        default=None, alias="provider:segmentation_id", ge=0, le=2**32
    )
    dns_domain: str | None = _S
    qos_policy_id: str | None = _S
    is_default: bool | None = None


class AllocationPool(_Body):
    start: str = Field(max_length=15)
    end: str = Field(max_length=15)


class HostRoute(_Body):
    destination: str = Field(max_length=18)
    nexthop: str = Field(max_length=15)


class SubnetAttrs(_Body):
    name: str | None = _S
    network_id: str | None = Field(default=None, max_length=36)
    cidr: str | None = Field(default=None, max_length=18)
    ip_version: int | None = None
    gateway_ip: str | None = Field(default=None, max_length=15)
    allocation_pools: list[AllocationPool] | None = _LIST
    dns_nameservers: list[str] | None = _LIST
    host_routes: list[HostRoute] | None = _LIST
    enable_dhcp: bool | None = None
    description: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = _S
    project_id: str | None = _S
    tags: list[str] | None = _LIST
    ipv6_ra_mode: str | None = Field(default=None, max_length=16)
    ipv6_address_mode: str | None = Field(default=None, max_length=16)
    subnetpool_id: str | None = _S
    service_types: list[str] | None = _LIST
    segment_id: str | None = _S
    dns_publish_fixed_ip: bool | None = None


class FixedIp(_Body):
    subnet_id: str | None = Field(default=None, max_length=36)
    ip_address: str | None = Field(default=None, max_length=15)


class PortAttrs(_Body):
    name: str | None = _S
    network_id: str | None = Field(default=None, max_length=36)
    mac_address: str | None = Field(default=None, max_length=17)
    fixed_ips: list[FixedIp] | None = Field(default=None, max_length=16)
    device_id: str | None = _S
    device_owner: str | None = _S
    binding_host_id: str | None = Field(default=None, alias="binding:host_id", max_length=255)
    admin_state_up: bool | None = None
    description: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = _S
    project_id: str | None = _S
    security_groups: list[str] | None = _LIST
    port_security_enabled: bool | None = None
    tags: list[str] | None = _LIST
    binding_vnic_type: str | None = Field(default=None, alias="binding:vnic_type", max_length=32)
    binding_profile: dict[str, Any] | None = Field(default=None, alias="binding:profile")
    allowed_address_pairs: list[dict[str, Any]] | None = _LIST
    dns_name: str | None = _S
    qos_policy_id: str | None = _S
    propagate_uplink_status: bool | None = None


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
