"""The message contracts of the bus: the one module the engine and the agents import.

Every message is a versioned JSON envelope whose ``body`` is validated against the
model of its ``type`` on receipt (``decode``). Anything malformed raises
ContractError with a clear reason; the bus (ipam.bus.messaging) logs and drops it.

Engine to agents (on ``agent_queue(host)``): ``port.update``/``port.delete``
(PortEvent), ``subnet.update``/``subnet.delete`` (SubnetEvent),
``network.update``/``network.delete`` (NetworkEvent), ``engine.started``
(EngineStarted: resync everything), and ``sync.reply`` (on the
agent's ``reply_queue(host)``). Agents to the engine (on ENGINE_QUEUE):
``sync.request``, ``port.ack``, ``lease.facts``, ``agent.heartbeat``,
``network.release``.

Everything that may reach a queue name, a file name, an interface or a dnsmasq
file is checked here: ids are canonical UUIDs, MACs lower-case colon form, IPs and
CIDRs canonical IPv4 or IPv6, host names ``validate_host``, VDSM names VDSM's rule.

IPv6 fields are left out of a message when they hold their defaults (an IPv4
subnet's), so an agent from before IPv6 still takes every IPv4-only network.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
import uuid
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from ipam.bus import dhcp_options

VERSION = 1
#: device_owner of a DHCP server's own port (one per host and network), as in Neutron.
DHCP_OWNER = "network:dhcp"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

ENGINE_QUEUE = "ovirt-ipam.engine"
_AGENT_PREFIX = "ovirt-ipam.agent."
_REPLY_PREFIX = "ovirt-ipam.reply."
_HOST_PREFIX = "ovirt-ipam.host."

_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# Queue names reach file names on the filesystem transport: no '/', no leading dot.
_QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# The one definition of each of these two rules on the ovirt-ipam side (engine and
# host): use is_mac and is_vdsm_name. (vdsm_verb/vdsm_plugin keeps its own copy of
# the VDSM name rule: VDSM carries that module, which imports nothing from ipam.)
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# VDSM's rule for network (= bridge) names: 1-15 of [A-Za-z0-9_-], not starting with '-'.
_VDSM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,14}")
#: VDSM's network name rule as error messages state it.
VDSM_NAME_RULE = "1-15 characters of A-Z a-z 0-9 _ -, not starting with '-'"
_PRINTABLE = re.compile(r"[\x20-\x7e]{0,255}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What a DHCP client says of itself, as dnsmasq writes it: a client id (option 61)
# in its lease file as lower-case hex octets with colons (1-255 octets), and the
# hostname a client sent (option 12 or 81) as --log-dhcp logs it. dnsmasq checks
# only the first label of a name; this rule checks every label.
_CLIENT_ID = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){0,254}")
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z0-9_-]{1,63})*\.?")

MAX_NETWORKS = 10_000
MAX_PORTS = 200_000
MAX_SUBNETS = 64
MAX_FIXED_IPS = 64
MAX_DNS = 32
MAX_ROUTES = 256

#: A network's dhcp_lease_time: None (the agent's ``[dhcp_agent] lease_time``),
#: LEASE_TIME_INFINITE (as Neutron's dhcp_lease_duration -1), or seconds from
#: LEASE_TIME_MIN (dnsmasq raises anything lower to 120 without a word) to LEASE_TIME_MAX.
LEASE_TIME_INFINITE = -1
LEASE_TIME_MIN = 120
LEASE_TIME_MAX = 2**31 - 1
LEASE_TIME_RULE = (
    f"null (the DHCP agent's default), {LEASE_TIME_INFINITE} (infinite) or an integer "
    f"number of seconds from {LEASE_TIME_MIN} to {LEASE_TIME_MAX}"
)


class ContractError(ValueError):
    """A message that does not follow the contract (bad JSON, version, type or body)."""


# -- field validators --------------------------------------------------------------


def validate_host(host: str) -> str:
    """A host name as it may appear in queue names and, on filesystem://, file names."""
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise ContractError(
            f"invalid host name {host!r}: 1-63 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return host


def validate_queue(name: str) -> str:
    """A queue name that is safe on every transport (also as part of a file name)."""
    if not isinstance(name, str) or not _QUEUE.fullmatch(name):
        raise ContractError(
            f"invalid queue name {name!r}: 1-200 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return name


def agent_queue(host: str) -> str:
    """The queue on which the agent of ``host`` receives the engine's events."""
    return _AGENT_PREFIX + validate_host(host)


def host_queue(host: str) -> str:
    """The queue on which the host service of ``host`` receives JSON-RPC requests."""
    return _HOST_PREFIX + validate_host(host)


def reply_queue(host: str) -> str:
    """The queue on which the agent of ``host`` receives replies to its calls."""
    return _REPLY_PREFIX + validate_host(host)


def _uuid(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise ValueError(f"{value!r} is not a canonical (lower-case, hyphenated) UUID")
    return value


def is_mac(value: object) -> bool:
    """Whether value is a MAC address in lower-case colon form (xx:xx:xx:xx:xx:xx)."""
    return isinstance(value, str) and _MAC.fullmatch(value) is not None


def is_client_id(value: object) -> bool:
    """Whether value is a DHCP client id as dnsmasq's lease file writes it."""
    return isinstance(value, str) and _CLIENT_ID.fullmatch(value) is not None


def is_client_hostname(value: object) -> bool:
    """Whether value is a hostname a DHCP client may send: DNS labels of letters,
    digits, '-' and '_' (what dnsmasq accepts), 253 characters at most."""
    return (
        isinstance(value, str) and len(value) <= 253 and _CLIENT_NAME.fullmatch(value) is not None
    )


def is_vdsm_name(value: object) -> bool:
    """Whether value is a VDSM network (= bridge) name: VDSM_NAME_RULE."""
    return isinstance(value, str) and _VDSM_NAME.fullmatch(value) is not None


def _mac(value: str) -> str:
    if not is_mac(value):
        raise ValueError(f"{value!r} is not a MAC address in lower-case colon form")
    return value


def _ip(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if getattr(ip, "scope_id", None) is not None:
        raise ValueError(f"{value!r} is not an IP address (a zone is not allowed)")
    if str(ip) != value:
        raise ValueError(f"{value!r} is not an IP address in canonical form")
    return value


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR") from None
    if getattr(net.network_address, "scope_id", None) is not None:
        raise ValueError(f"{value!r} is not a CIDR (a zone is not allowed)")
    if str(net) != value:
        raise ValueError(f"{value!r} is not a CIDR in canonical form")
    return value


def _host(value: str) -> str:
    try:
        return validate_host(value)
    except ContractError as exc:
        raise ValueError(str(exc)) from None


def _queue(value: str) -> str:
    try:
        return validate_queue(value)
    except ContractError as exc:
        raise ValueError(str(exc)) from None


def _vdsm_name(value: str) -> str:
    if not is_vdsm_name(value):
        raise ValueError(f"{value!r} is not a VDSM network name ({VDSM_NAME_RULE})")
    return value


def _client_id(value: str) -> str:
    if not is_client_id(value):
        raise ValueError("is not a DHCP client id (1-255 hex octets, lower case, with colons)")
    return value


def _client_hostname(value: str) -> str:
    if not is_client_hostname(value):
        raise ValueError("is not a hostname a DHCP client may send")
    return value


def _printable(value: str) -> str:
    if not _PRINTABLE.fullmatch(value):
        raise ValueError("must be printable ASCII, at most 255 characters")
    return value


def is_lease_time(value: object) -> TypeGuard[int | None]:
    """Whether value is a valid dhcp_lease_time (None included; bool is not an int here)."""
    if value is None:
        return True
    if type(value) is not int:
        return False
    return value == LEASE_TIME_INFINITE or LEASE_TIME_MIN <= value <= LEASE_TIME_MAX


def _lease_time(value: int | None) -> int | None:
    if not is_lease_time(value):
        raise ValueError(f"{repr(value)[:40]} is not a DHCP lease time: must be {LEASE_TIME_RULE}")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Uuid = Annotated[str, AfterValidator(_uuid)]
Mac = Annotated[str, AfterValidator(_mac)]
IP = Annotated[str, AfterValidator(_ip)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Host = Annotated[str, AfterValidator(_host)]
QueueName = Annotated[str, AfterValidator(_queue)]
VdsmName = Annotated[str, AfterValidator(_vdsm_name)]
Revision = Annotated[int, Field(ge=0)]
Timestamp = Annotated[float, AfterValidator(_finite)]
Text = Annotated[str, Field(max_length=255)]
Sender = Annotated[str, AfterValidator(_printable)]
LeaseTime = Annotated[int | None, AfterValidator(_lease_time)]
ClientId = Annotated[str, AfterValidator(_client_id)]
ClientHostname = Annotated[str, AfterValidator(_client_hostname)]
Ipv6Mode = Literal["slaac", "dhcpv6-stateful", "dhcpv6-stateless"]


def _dns_label(value: str) -> str:
    if dhcp_options.dns_label(value) != value:
        raise ValueError(f"{value!r} is not a DNS name in canonical (lower-case) form")
    return value


def _dns_domain(value: str) -> str:
    if not value or dhcp_options.dns_domain(value) != value:
        raise ValueError(f"{value!r} is not a DNS domain in canonical form")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsDomain = Annotated[str, AfterValidator(_dns_domain)]
MAX_DHCP_OPTS = 32


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


# -- bodies ------------------------------------------------------------------------


class FixedIp(_Model):
    subnet_id: Uuid
    ip_address: IP


class DhcpOpt(_Model):
    """One of a port's extra_dhcp_opts: an allowed name (canonical) and a checked value."""

    opt_name: Annotated[str, Field(max_length=64)]
    opt_value: Annotated[str, Field(max_length=255)]
    ip_version: Literal[4, 6] = 4

    @model_validator(mode="after")
    def _allowed(self) -> DhcpOpt:
        name = dhcp_options.option_name(self.opt_name, self.ip_version)
        value = dhcp_options.option_value(name, self.opt_value, self.ip_version)
        if name != self.opt_name or value != self.opt_value:
            raise ValueError(f"DHCP option {self.opt_name!r} is not in canonical form")
        return self


class PortState(_Model):
    id: Uuid
    network_id: Uuid
    mac_address: Mac
    fixed_ips: Annotated[list[FixedIp], Field(max_length=MAX_FIXED_IPS)]
    revision_number: Revision
    device_owner: Text
    admin_state_up: bool
    #: The port's hostname (DHCP option 12 and its DNS records); None: none.
    dns_name: DnsLabel | None = None
    extra_dhcp_opts: Annotated[list[DhcpOpt], Field(max_length=MAX_DHCP_OPTS)] = []

    @model_serializer(mode="wrap")
    def _without_name_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A port without a name or options is sent as before these fields existed."""
        data = handler(self)
        if isinstance(data, dict):
            if data.get("dns_name") is None:
                data.pop("dns_name", None)
            if not data.get("extra_dhcp_opts"):
                data.pop("extra_dhcp_opts", None)
        return data


class HostRoute(_Model):
    destination: Cidr
    nexthop: IP


class SubnetState(_Model):
    id: Uuid
    cidr: Cidr
    gateway_ip: IP | None
    enable_dhcp: bool
    dns_nameservers: Annotated[list[IP], Field(max_length=MAX_DNS)]
    host_routes: Annotated[list[HostRoute], Field(max_length=MAX_ROUTES)]
    revision_number: Revision
    ip_version: Literal[4, 6] = 4
    #: Neutron's modes (IPv6 only): None, "slaac", "dhcpv6-stateful", "dhcpv6-stateless".
    ipv6_address_mode: Ipv6Mode | None = None
    ipv6_ra_mode: Ipv6Mode | None = None

    @model_validator(mode="after")
    def _one_family(self) -> SubnetState:
        """Every address of a subnet is of its CIDR's family, modes only on IPv6."""
        version = ipaddress.ip_network(self.cidr).version
        addresses = [self.gateway_ip, *self.dns_nameservers]
        addresses += [a for r in self.host_routes for a in (r.destination, r.nexthop)]
        if version != self.ip_version or any(
            a is not None and ipaddress.ip_network(a).version != version for a in addresses
        ):
            raise ValueError(f"subnet {self.id}: addresses of more than one IP version")
        if version == 4 and (self.ipv6_address_mode or self.ipv6_ra_mode):
            raise ValueError(f"subnet {self.id}: IPv6 modes on an IPv4 subnet")
        return self

    @model_serializer(mode="wrap")
    def _without_ipv4_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        """An IPv4 subnet's message is what it was before IPv6 (see the module's doc)."""
        data = handler(self)
        if isinstance(data, dict) and data.get("ip_version") == 4:
            for key in ("ip_version", "ipv6_address_mode", "ipv6_ra_mode"):
                data.pop(key, None)
        return data


class NetworkInfo(_Model):
    id: Uuid
    vdsm_name: VdsmName
    mtu: Annotated[int, Field(ge=68, le=65535)]
    admin_state_up: bool
    revision_number: Revision
    #: Seconds; None: the agent's [dhcp_agent] lease_time; -1: infinite.
    dhcp_lease_time: LeaseTime = None
    #: The domain VMs are told (option 15) and their names are in; None: none.
    dns_domain: DnsDomain | None = None
    #: Whether the serving dnsmasq answers DNS for the network's ports.
    dns_service: bool = False

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Fields at their defaults are left out: an agent from before them
        (extra="forbid") still takes the state of every network that does not set them."""
        data = handler(self)
        if isinstance(data, dict):
            for key in ("dhcp_lease_time", "dns_domain"):
                if data.get(key) is None:
                    data.pop(key, None)
            if data.get("dns_service") is False:
                data.pop("dns_service", None)
        return data


class NetworkState(_Model):
    network: NetworkInfo
    subnets: Annotated[list[SubnetState], Field(max_length=MAX_SUBNETS)]
    ports: Annotated[list[PortState], Field(max_length=MAX_PORTS)]
    dhcp_port: PortState | None


class SyncRequest(_Model):
    host: Host
    networks: Annotated[list[Uuid], Field(max_length=MAX_NETWORKS)]


class SyncReply(_Model):
    networks: Annotated[list[NetworkState], Field(max_length=MAX_NETWORKS)]
    missing: Annotated[list[Uuid], Field(max_length=MAX_NETWORKS)]


class PortEvent(_Model):
    port: PortState


class NetworkEvent(_Model):
    network_id: Uuid
    revision_number: Revision


class SubnetEvent(_Model):
    network_id: Uuid
    subnet_id: Uuid
    revision_number: Revision


class EngineStarted(_Model):
    """An engine started: events it was about to send when its predecessor died may be
    lost, so every agent resyncs all its networks."""

    started_at: Timestamp


class AckedPort(_Model):
    id: Uuid
    revision_number: Revision


class PortAck(_Model):
    host: Host
    network_id: Uuid
    ports: Annotated[list[AckedPort], Field(max_length=MAX_PORTS)]


#: What a DHCP server last saw of a client: offered (OFFER sent), bound (ACK sent),
#: nak (NAK sent), released (RELEASE received), declined (DECLINE received: the
#: client found the address in use), expired (the lease ran out unrenewed).
LeaseState = Literal["offered", "bound", "nak", "released", "declined", "expired"]
MAX_LEASE_FACTS = 10_000


class LeaseFact(_Model):
    """One client's latest exchange with this host's dnsmasq, from its log."""

    mac_address: Mac
    ip_address: IP | None
    state: LeaseState
    #: When dnsmasq logged it (the agent's clock, seconds since the epoch).
    seen_at: Timestamp
    #: When a bound lease ends (None: infinite, or not bound).
    expires_at: Timestamp | None = None
    #: dnsmasq's own words for a NAK (e.g. "wrong address"), printable only.
    reason: Sender | None = None
    #: The client id the client sent (option 61), from the lease file (bound only).
    client_id: ClientId | None = None
    #: The hostname the client sent with this exchange (never used as its name).
    client_hostname: ClientHostname | None = None

    @model_serializer(mode="wrap")
    def _without_client_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A fact without what the client said of itself is sent as before these
        fields existed, so an engine that predates them still takes it."""
        data = handler(self)
        if isinstance(data, dict):
            for key in ("client_id", "client_hostname"):
                if data.get(key) is None:
                    data.pop(key, None)
        return data


class LeaseFacts(_Model):
    """A batch of lease facts of one network served on one host (never one message
    per packet). ``unparsed`` counts DHCP log lines the agent did not understand
    since its last batch: they are logged, never turned into facts."""

    host: Host
    network_id: Uuid
    facts: Annotated[list[LeaseFact], Field(max_length=MAX_LEASE_FACTS)]
    unparsed: Annotated[int, Field(ge=0)] = 0
    #: True when the facts are a full rebuild from dnsmasq's lease file (an agent or
    #: dnsmasq that started): bound leases not in it are no longer bound on this host.
    rebuilt: bool = False


class ServedNetworkReport(_Model):
    """One network a DHCP agent serves, as its heartbeat reports it."""

    id: Uuid
    ports: Annotated[int, Field(ge=0)]
    dnsmasq: Literal["running", "starting", "down"]
    #: Seconds the agent is behind on this network: the age of the oldest port change
    #: it received and has not acknowledged, or its slowest acknowledgement since its
    #: last heartbeat, whichever is more (0: up to date). None: an agent from before.
    ack_lag_s: Annotated[Timestamp, Field(ge=0)] | None = None

    @model_serializer(mode="wrap")
    def _without_lag_default(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Sent as before the field existed when unknown, for engines that predate it."""
        data = handler(self)
        if isinstance(data, dict) and data.get("ack_lag_s") is None:
            data.pop("ack_lag_s", None)
        return data


class Heartbeat(_Model):
    host: Host
    started_at: Timestamp
    networks: Annotated[list[ServedNetworkReport], Field(max_length=MAX_NETWORKS)]


class NetworkRelease(_Model):
    host: Host
    network_id: Uuid


class HostHeartbeat(_Model):
    """The host service's liveness and the oVirt networks (bridges) the host carries."""

    host: Host
    started_at: Timestamp
    bridges: Annotated[list[VdsmName], Field(max_length=MAX_NETWORKS)]


class JsonRpcRequest(_Model):
    """A JSON-RPC 2.0 request to a host's verbs (Host.setDHCP, Host.getDHCP)."""

    jsonrpc: Literal["2.0"]
    method: Annotated[str, Field(max_length=64)]
    params: dict[str, Any] | None = None
    id: Annotated[str, Field(max_length=64)] | int | None = None


class JsonRpcError(_Model):
    code: int
    message: Annotated[str, Field(max_length=4096)]


class JsonRpcResponse(_Model):
    jsonrpc: Literal["2.0"]
    id: Annotated[str, Field(max_length=64)] | int | None = None
    result: Any = None
    error: JsonRpcError | None = None


#: Message type -> the model of its body.
TYPES: dict[str, type[BaseModel]] = {
    "sync.request": SyncRequest,
    "sync.reply": SyncReply,
    "port.update": PortEvent,
    "port.delete": PortEvent,
    "network.update": NetworkEvent,
    "network.delete": NetworkEvent,
    "engine.started": EngineStarted,
    "subnet.update": SubnetEvent,
    "subnet.delete": SubnetEvent,
    "port.ack": PortAck,
    "lease.facts": LeaseFacts,
    "agent.heartbeat": Heartbeat,
    "network.release": NetworkRelease,
    "host.heartbeat": HostHeartbeat,
    "jsonrpc.request": JsonRpcRequest,
    "jsonrpc.reply": JsonRpcResponse,
}


def _check_version(value: int) -> int:
    if value != VERSION:
        raise ValueError(f"unsupported message version {value} (this side speaks {VERSION})")
    return value


def _check_type(value: str) -> str:
    if value not in TYPES:
        raise ValueError(f"unknown message type {value[:64]!r}")
    return value


class Envelope(_Model):
    """What travels on the bus; ``body`` is validated against TYPES[type] by decode."""

    v: Annotated[int, AfterValidator(_check_version)]
    type: Annotated[str, AfterValidator(_check_type)]
    id: Uuid
    sent_at: Timestamp
    sender: Sender
    reply_to: QueueName | None = None
    correlation_id: Uuid | None = None
    body: dict[str, Any]


# -- building and reading messages ---------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def make(
    type: str,
    body: BaseModel,
    sender: str,
    reply_to: str | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """A new envelope (fresh id, sent now) carrying body, which must fit type."""
    model = TYPES.get(type)
    if model is None:
        raise ContractError(f"unknown message type {type!r}")
    if not isinstance(body, model):
        raise ContractError(
            f"a {type} message carries a {model.__name__}, not a {body.__class__.__name__}"
        )
    try:
        return Envelope(
            v=VERSION,
            type=type,
            id=new_id(),
            sent_at=time.time(),
            sender=sender,
            reply_to=reply_to,
            correlation_id=correlation_id,
            body=body.model_dump(mode="json"),
        )
    except ValidationError as exc:
        raise ContractError(f"invalid envelope: {_reasons(exc)}") from None


def encode(env: Envelope) -> bytes:
    """The envelope as compact UTF-8 JSON."""
    return env.model_dump_json().encode()


def _reasons(exc: ValidationError, limit: int = 5) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in errors[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unexpected field"
        parts.append(f"{where}: {msg}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode(raw: bytes | str | dict) -> tuple[Envelope, BaseModel]:
    """Validate an envelope and the body its type names; ContractError if malformed."""
    if isinstance(raw, bytes | bytearray | memoryview | str):
        size = len(raw) if not isinstance(raw, str) else len(raw.encode("utf-8", "replace"))
        if size > MAX_MESSAGE_BYTES:
            raise ContractError(
                f"message too large: {size} bytes (at most {MAX_MESSAGE_BYTES} bytes)"
            )
        try:
            data = json.loads(
                bytes(raw) if not isinstance(raw, str) else raw, parse_constant=_no_constants
            )
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ContractError(f"message is not valid JSON: {str(exc)[:200]}") from None
    elif isinstance(raw, dict):
        data = raw
    else:
        raise ContractError(f"message is a {type(raw).__name__}, not JSON bytes, str or dict")
    if not isinstance(data, dict):
        raise ContractError(f"message is a JSON {type(data).__name__}, not an object")
    # Version first: a message of another version gets that reason, not a field list.
    if "v" in data and data["v"] != VERSION:
        raise ContractError(
            f"unsupported message version {str(data['v'])[:32]} (this side speaks {VERSION})"
        )
    try:
        env = Envelope.model_validate(data)
    except ValidationError as exc:
        raise ContractError(f"invalid envelope: {_reasons(exc)}") from None
    try:
        body = TYPES[env.type].model_validate(env.body)
    except ValidationError as exc:
        raise ContractError(f"invalid {env.type} body: {_reasons(exc)}") from None
    return env, body
