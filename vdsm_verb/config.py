"""oslo.config options of the host service (group ``[host]``)."""

from __future__ import annotations

from oslo_config import cfg

host_opts = [
    cfg.FloatOpt(
        "heartbeat_interval",
        default=2.0,
        min=0.1,
        help="Seconds between the host's heartbeats (its oVirt networks) to the engine.",
    ),
    cfg.IntOpt("max_networks", default=256, min=1, help="Longest list Host.setDHCP accepts."),
    cfg.StrOpt(
        "agent_manager",
        default="auto",
        choices=[
            ("auto", "systemd where systemd runs, otherwise direct"),
            ("systemd", "systemctl start/reload/stop ovirt-ipam-dhcp-agent.service"),
            ("direct", "the host service starts the agent itself and keeps a pid file"),
        ],
        help="How the DHCP agent's lifecycle is managed.",
    ),
    cfg.StrOpt(
        "vdsm_netconf_dir",
        default="/var/lib/vdsm/staging/netconf",
        help="VDSM's running network configuration (one JSON file per network under "
        "nets/, what getCapabilities reports). Where this directory exists, the host's "
        "oVirt networks (heartbeat, and what the DHCP agent may serve) are the bridged "
        "networks listed there whose bridge exists; a bridge VDSM does not know is "
        "not reported. Where it does not (no VDSM: the lab), every Linux bridge with a "
        "VDSM network name. Empty: always the Linux bridges.",
    ),
    cfg.StrOpt(
        "agent_pidfile",
        sample_default="$state_path/dhcp-agent.pid",
        help="Pid file of the agent with agent_manager=direct.",
    ),
]

cfg.CONF.register_opts(host_opts, group="host")


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [("host", host_opts)]
