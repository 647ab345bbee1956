"""oslo.config options of ovirt-ipam; the sample in etc/ is generated from list_opts()."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING

from oslo_config import cfg

if TYPE_CHECKING:
    from ipam.bus.messaging import Bus

CONF = cfg.CONF

default_opts = [
    cfg.StrOpt(
        "state_path",
        default="/var/lib/ovirt-ipam",
        help="Directory for the embedded database, the filesystem message bus and other state.",
    ),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        sample_default="filesystem://$state_path/bus",
        help="kombu transport URL of the message bus. Unset: kombu's filesystem:// "
        "transport under state_path. Real deployments: amqp://user:pass@host:5672//.",
    ),
    cfg.StrOpt(
        "base_mac",
        default="fa:16:3e:00:00:00",
        help="Base MAC for generated port MACs: the first three octets are kept, the "
        "rest are random (unique per network).",
    ),
    cfg.BoolOpt("debug", default=False, help="Log at DEBUG level."),
]

database_opts = [
    cfg.StrOpt(
        "connection",
        secret=True,
        sample_default="sqlite:///$state_path/ovirt-ipam.sqlite",
        help="SQLAlchemy URL of the IPAM store. Unset: a SQLite file (WAL) under "
        "state_path. PostgreSQL: postgresql://user@host/dbname.",
    ),
    cfg.IntOpt(
        "max_retries",
        default=20,
        min=1,
        help="How many times a transaction that lost a race (unique constraint, "
        "serialization or lock conflict) is retried before the request fails.",
    ),
    cfg.IntOpt("pool_size", default=5, min=1, help="Connection pool size (PostgreSQL)."),
]

api_opts = [
    cfg.HostAddressOpt("bind_host", default="127.0.0.1", help="Address the REST API binds to."),
    cfg.PortOpt("bind_port", default=9696, help="Port of the REST API (Neutron's port)."),
    cfg.StrOpt(
        "ssl_cert_file",
        help="PEM certificate (chain) of the REST API: with ssl_key_file, the API is "
        "served over HTTPS only.",
    ),
    cfg.StrOpt("ssl_key_file", help="PEM private key of ssl_cert_file (keep it 0600)."),
    cfg.StrOpt(
        "auth_strategy",
        default="noauth",
        choices=[
            ("noauth", "No authentication; only allowed when bind_host is a loopback address."),
            (
                "token",
                "Requests carry X-Auth-Token equal to [api] auth_token; the "
                "Keystone-style endpoint hands it out for auth_username/auth_password.",
            ),
        ],
        help="How API requests are authenticated.",
    ),
    cfg.StrOpt("auth_token", secret=True, help="Static token accepted with auth_strategy=token."),
    cfg.StrOpt("auth_username", default="admin", help="User the token endpoint accepts."),
    cfg.StrOpt("auth_password", secret=True, help="Password the token endpoint accepts."),
    cfg.IntOpt(
        "max_request_body_size",
        default=1024 * 1024,
        min=1024,
        help="Largest request body accepted, in bytes; larger gets 413.",
    ),
    cfg.StrOpt(
        "public_url",
        help="Base URL announced in version discovery and the token endpoint's service "
        "catalog. Unset: derived from the request.",
    ),
    cfg.IntOpt(
        "workers",
        default=1,
        min=1,
        help="API processes serving bind_port. 1: the engine process serves the API "
        "itself. More: it starts that many API worker processes (a uvicorn server each, "
        "on a socket of its own: SO_REUSEPORT), each with its own store connections, and "
        "keeps the bus server and the DHCP manager to itself; a worker that dies is "
        "replaced.",
    ),
]

bus_opts = [
    cfg.FloatOpt(
        "polling_interval",
        default=0.002,
        min=0.001,
        max=10,
        help="Seconds between polls of the message directory when transport_url is "
        "filesystem:// and inotify is not available (otherwise a consumer is woken by "
        "inotify when a message arrives; AMQP does not poll).",
    ),
    cfg.StrOpt(
        "ssl_ca_file",
        help="With an amqps:// transport_url: the CA bundle the broker's certificate must "
        "chain to (default: the system's CAs). The broker's name is checked too.",
    ),
    cfg.StrOpt(
        "ssl_cert_file", help="With amqps://: a client certificate, for brokers that ask one."
    ),
    cfg.StrOpt("ssl_key_file", help="With amqps://: the private key of ssl_cert_file."),
]

dhcp_opts = [
    cfg.StrOpt(
        "ready_policy",
        default="any",
        choices=[
            ("any", "a port create returns once one serving DHCP server loaded it"),
            ("all", "... once every live serving DHCP server loaded it"),
            ("none", "returns at once; the port becomes ACTIVE when a server loaded it"),
        ],
        help="When POST /v2.0/ports (and a PUT changing its MAC, IPs, dns_name or "
        "extra_dhcp_opts) returns.",
    ),
    cfg.FloatOpt(
        "ready_timeout",
        default=10.0,
        min=0,
        max=25,
        help="Longest wait for the ready policy, in seconds; then the port is returned DOWN. "
        "At most 25: oVirt engine's provider client gives up on an answer after 30 s "
        "(ExternalNetworkProviderTimeout), and a port create must answer within it, "
        "allocation and commit included.",
    ),
    cfg.BoolOpt(
        "manage_placement",
        default=True,
        help="Run the DHCP manager (in the engine holding the leader lock): place networks "
        "on hosts and call Host.setDHCP. Off: hosts serve what an administrator gives them "
        "with 'ovirt-ipam host-call'.",
    ),
    cfg.StrOpt(
        "placement_load",
        default="networks",
        choices=[("networks", "networks served"), ("ports", "ports on the networks served")],
        help="What makes a host loaded when the DHCP manager places a network.",
    ),
    cfg.FloatOpt(
        "startup_grace",
        default=6.0,
        min=0,
        help="Seconds after the engine starts before the DHCP manager decides anything, "
        "while the hosts' heartbeats come in.",
    ),
    cfg.FloatOpt(
        "host_down_time",
        default=6.0,
        min=0.5,
        help="Seconds without a heartbeat after which a host (or its DHCP agent) "
        "is considered down; also how long the DHCP manager waits for a host that owes "
        "it an answer to Host.setDHCP before it moves that host's networks.",
    ),
    cfg.FloatOpt(
        "dhcp_port_release_after",
        default=3600.0,
        min=0,
        help="Seconds after a host's last heartbeat at which the DHCP manager deletes "
        "its DHCP ports (network:dhcp) on the networks it no longer serves, so their "
        "addresses go back to the pools, and removes its queues on the bus with what "
        "they hold; a host that comes back gets new ones. Its networks move to other "
        "hosts after host_down_time already.",
    ),
    cfg.FloatOpt(
        "host_call_timeout",
        default=30.0,
        min=1,
        help="Deadline of one Host.setDHCP call from the DHCP manager, in seconds; then it "
        "is retried with backoff. Calls to different hosts run side by side, so a host "
        "that does not answer delays no other.",
    ),
]

dns_opts = [
    cfg.StrOpt(
        "domain",
        default="ovirtlocal.",
        help="DNS domain of the networks that set no dns_domain: VMs are told it (DHCP "
        "option 15) and their names are in it (a port's dns_assignment fqdn). A fully "
        "qualified name ending with '.'; empty: none.",
    ),
    cfg.BoolOpt(
        "service_default",
        default=False,
        help="Whether the networks that do not set dns_service get the DNS service: "
        "their DHCP servers answer DNS for the network's ports and forward other names "
        "to the subnet's dns_nameservers.",
    ),
]

CONF.register_opts(default_opts)
CONF.register_opts(dhcp_opts, group="dhcp")
CONF.register_opts(database_opts, group="database")
CONF.register_opts(api_opts, group="api")
CONF.register_opts(bus_opts, group="bus")
CONF.register_opts(dns_opts, group="dns")


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace ``ovirt_ipam``)."""
    return [
        ("DEFAULT", default_opts),
        ("database", database_opts),
        ("api", api_opts),
        ("bus", bus_opts),
        ("dhcp", dhcp_opts),
        ("dns", dns_opts),
    ]


def database_url(conf: cfg.ConfigOpts = CONF) -> str:
    """The store URL: the configured one, or the embedded SQLite file."""
    if conf.database.connection:
        return conf.database.connection
    return "sqlite:///" + os.path.join(os.path.abspath(conf.state_path), "ovirt-ipam.sqlite")


def transport_url(conf: cfg.ConfigOpts = CONF) -> str:
    """The bus URL: the configured one, or kombu filesystem:// under state_path (made
    absolute: a relative state_path, as etc/ovirt-ipam.dev.conf's, is the working
    directory's, and a filesystem:// URL must name an absolute path)."""
    if conf.transport_url:
        return conf.transport_url
    return "filesystem://" + os.path.join(os.path.abspath(conf.state_path), "bus")


def is_loopback(host: str) -> bool:
    """True when host names a loopback address (noauth is only allowed there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_config(conf: cfg.ConfigOpts = CONF) -> None:
    """Refuse configurations that would expose an unauthenticated API."""
    api = conf.api
    if api.auth_strategy == "noauth" and not is_loopback(api.bind_host):
        raise cfg.Error(
            f"[api] auth_strategy=noauth is only allowed on loopback, but bind_host is "
            f"{api.bind_host}; set auth_strategy=token and auth_token"
        )
    if api.auth_strategy == "token" and not api.auth_token:
        raise cfg.Error("[api] auth_strategy=token needs [api] auth_token")
    if bool(api.ssl_cert_file) != bool(api.ssl_key_file):
        raise cfg.Error("[api] ssl_cert_file and ssl_key_file go together: set both or neither")
    for name in ("ssl_cert_file", "ssl_key_file"):
        _check_readable("api", name, getattr(api, name))


def _check_readable(group: str, name: str, path: str | None) -> None:
    if path and not os.access(path, os.R_OK):
        raise cfg.Error(f"[{group}] {name} = {path} is not a readable file")


def dns_domain(conf: cfg.ConfigOpts = CONF) -> str:
    """[dns] domain, canonical ("" for none); one that breaks the rule stops the engine
    at start rather than reaching every VM's DHCP answer."""
    from ipam.bus import dhcp_options

    try:
        return dhcp_options.dns_domain(conf.dns.domain or "")
    except dhcp_options.OptionError as exc:
        raise cfg.Error(f"[dns] domain: {exc}") from None


def bus_tls(conf: cfg.ConfigOpts = CONF) -> dict[str, str] | None:
    """The [bus] ssl_* files for an amqps:// transport (None: not amqps://); refuses
    TLS files given for a transport that would not use them."""
    url = transport_url(conf)
    files = {
        k: v
        for k, v in (
            ("ca_file", conf.bus.ssl_ca_file),
            ("cert_file", conf.bus.ssl_cert_file),
            ("key_file", conf.bus.ssl_key_file),
        )
        if v
    }
    if not url.startswith("amqps://"):
        if files:
            raise cfg.Error(
                "[bus] ssl_* files are set but transport_url is not amqps://; "
                "use amqps://user:pass@broker:5671/ for TLS"
            )
        return None
    for name, path in files.items():
        _check_readable("bus", f"ssl_{name}", path)
    return files


def bus_from_config(conf: cfg.ConfigOpts, name: str) -> Bus:
    """The bus of [DEFAULT] transport_url and [bus] (polling, TLS), named for the
    broker's view of its connections. Built here and passed in: ipam.bus knows
    nothing of the configuration."""
    from ipam.bus.messaging import Bus

    return Bus(
        transport_url(conf),
        polling_interval=conf.bus.polling_interval,
        name=name,
        tls=bus_tls(conf),
    )
