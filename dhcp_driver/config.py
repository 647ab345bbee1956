"""oslo.config options of the DHCP agent (group ``[dhcp_agent]``)."""

from __future__ import annotations

import socket

from oslo_config import cfg

agent_opts = [
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="This host's name as the engine knows it (VDSM host name). Letters, "
        "digits, '.', '_' and '-', at most 63 characters.",
    ),
    cfg.StrOpt(
        "mapping_file",
        default="/var/lib/vdsm/ovirt-ipam/dhcp-networks.json",
        help="The network-to-id mapping that Host.setDHCP writes; the networks "
        "this host serves are those listed here whose bridge exists.",
    ),
    cfg.StrOpt(
        "namespace_prefix",
        default="ovirt-ipam-dhcp-",
        help="Prefix of the DHCP namespaces (one per served network, named prefix + network id).",
    ),
    cfg.StrOpt("dnsmasq_binary", default="dnsmasq", help="The dnsmasq executable."),
    cfg.IntOpt("lease_time", default=86400, min=120, help="DHCP lease time in seconds."),
    cfg.FloatOpt(
        "heartbeat_interval", default=2.0, min=0.1, help="Seconds between heartbeats to the engine."
    ),
    cfg.FloatOpt(
        "resync_interval",
        default=300.0,
        min=1,
        help="Seconds between full resyncs of every served network (catches drift).",
    ),
    cfg.FloatOpt(
        "sync_timeout",
        default=30.0,
        min=1,
        help="Seconds to wait for the engine's answer to a sync call.",
    ),
    cfg.FloatOpt(
        "confirm_timeout",
        default=10.0,
        min=0.5,
        help="Seconds to wait for dnsmasq to show it loaded a batch of entries.",
    ),
]

cfg.CONF.register_opts(agent_opts, group="dhcp_agent")


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [("dhcp_agent", agent_opts)]
