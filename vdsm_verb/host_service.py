"""The host service (``ovirt-ipam host``): the Host.setDHCP verb until VDSM carries
it, and the host's heartbeat to the engine.

It serves JSON-RPC 2.0 requests from the bus queue of this host, one at a time
(one consumer, and the verb's lock), and replies on the caller's reply queue.
Every heartbeat names the host and the oVirt networks it carries, by VDSM name:
where VDSM runs, the bridged networks of its running configuration whose bridge
exists (a bridge VDSM does not know, virbr0 or docker0, is not reported, so no
network is placed on a host that does not carry it); elsewhere (the lab), the
Linux bridges present.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import struct
import threading
import time
from pathlib import Path

from oslo_config import cfg
from pydantic import BaseModel
from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_LINK

from dhcp_driver import config as agent_config  # noqa: F401 (registers [dhcp_agent])
from dhcp_driver.agent import shutdown_all
from dhcp_driver.mapping import is_vdsm_name
from ipam.bus import contracts
from ipam.bus.messaging import Bus
from vdsm_verb import config as host_config  # noqa: F401 (registers [host])
from vdsm_verb.jsonrpc import dispatch
from vdsm_verb.service_manager import AgentService, DirectService, SystemdService, systemd_running
from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import vdsm_networks
from vdsm_verb.verb import DhcpVerb

LOG = logging.getLogger(__name__)
#: Seconds between looks at VDSM's running configuration, where there is one.
NETCONF_LOOK_S = 0.2


def agent_service(conf: cfg.ConfigOpts) -> AgentService:
    manager = conf.host.agent_manager
    if manager == "systemd" or (manager == "auto" and systemd_running()):
        return SystemdService()
    state = Path(conf.state_path)
    pidfile = Path(conf.host.agent_pidfile) if conf.host.agent_pidfile else state / "dhcp-agent.pid"
    return DirectService(list(conf.config_file), pidfile, state / "dhcp-agent.log")


def build_verb(conf: cfg.ConfigOpts) -> DhcpVerb:
    return DhcpVerb(
        conf.dhcp_agent.mapping_file,
        agent_service(conf),
        lambda: shutdown_all(conf),
        conf.host.max_networks,
    )


def bridges(netconf_dir: str | None = None) -> list[str]:
    """The oVirt networks this host carries, by (VDSM) name: its Linux bridges; where
    VDSM runs (netconf_dir, its running configuration, exists) only those that are
    bridged networks there."""
    with IPRoute() as ip:
        names = {
            link.get_attr("IFLA_IFNAME")
            for link in ip.get_links()
            if link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "bridge"
        }
    known = vdsm_networks(netconf_dir) if netconf_dir else None
    if known is not None:
        names &= known
    return sorted(n for n in names if is_vdsm_name(n))


def netconf_stamp(netconf_dir: str | None) -> tuple[int, int] | None:
    """Changes when VDSM saves its running configuration (it replaces the directory
    behind a symlink): a network VDSM set up is then reported at once too."""
    if not netconf_dir:
        return None
    try:
        st = os.stat(os.path.join(netconf_dir, "nets"))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_RTA = struct.Struct("=HH")  # rtattr: length, type
_RTM_NEWLINK, _RTM_DELLINK = 16, 17
_IFLA_LINKINFO, _IFLA_INFO_KIND = 18, 1


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """The netlink attributes (rtattr) in data[start:end], by type."""
    out = {}
    while start + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, start)
        if length < _RTA.size:
            break
        out[kind & 0x3FFF] = data[start + _RTA.size : start + length]  # no NESTED flag
        start += _align(length)
    return out


def bridge_events(data: bytes) -> bool:
    """Whether link messages (netlink, RTMGRP_LINK) may change the bridges this host
    reports: a bridge's own (it came, went, changed), or any deletion (rare); not the
    far more frequent ones of its ports (a veth's, or the bridge module's per-port
    AF_BRIDGE ones, as VMs come and their links settle), each of which would have the
    bridges listed again (issue 18: host services busy for seconds after VMs start)."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind = _NLMSG.unpack_from(data, offset)[:2]
        if length < _NLMSG.size:
            break
        body = offset + _NLMSG.size
        if kind in (_RTM_NEWLINK, _RTM_DELLINK) and body + _IFINFO.size <= len(data):
            family = _IFINFO.unpack_from(data, body)[0]
            if family != socket.AF_BRIDGE:
                if kind == _RTM_DELLINK:
                    return True
                attrs = _attrs(data, body + _IFINFO.size, offset + length)
                info = attrs.get(_IFLA_LINKINFO, b"")
                if _attrs(info, 0, len(info)).get(_IFLA_INFO_KIND, b"").rstrip(b"\0") == b"bridge":
                    return True
        offset += _align(length)
    return False


def watch_links(changed: threading.Event, stopping: threading.Event) -> None:
    """Set ``changed`` whenever a bridge appears, goes or changes (netlink), so a new
    bridge is reported at once, not at the next heartbeat: a network set up on this
    host is then served within a fraction of a second (DESIGN.md flow 4). A plain
    netlink socket: every message is read as it comes (pyroute2's reader keeps some
    back, where select does not see them)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.bind((0, RTMGRP_LINK))
            sock.setblocking(False)
            while not stopping.is_set():
                ready, _, _ = select.select([sock], [], [], 2.0)
                relevant = False
                while ready:
                    try:
                        data = sock.recv(1 << 16)
                    except BlockingIOError:
                        break
                    except OSError as exc:  # ENOBUFS: messages lost, look anyway
                        LOG.debug("Link messages lost (%s); listing the bridges again", exc)
                        relevant = True
                        continue
                    relevant = relevant or bridge_events(data)
                if relevant:
                    changed.set()
    except Exception:
        LOG.exception("Watching links failed; bridges are reported with heartbeats only")


class HostService:
    def __init__(self, conf: cfg.ConfigOpts, bus: Bus) -> None:
        self.conf, self.bus = conf, bus
        self.host = contracts.validate_host(conf.dhcp_agent.host)
        self.verb = build_verb(conf)
        self.stopping = threading.Event()
        self.links_changed = threading.Event()
        self.started_at = time.time()
        self.netconf_dir: str | None = conf.host.vdsm_netconf_dir or None
        self._reported: list[str] | None = None

    def on_message(self, env: contracts.Envelope, body: BaseModel) -> None:
        if env.type != "jsonrpc.request" or not env.reply_to:
            LOG.warning("Ignoring %s message %s from %s", env.type, env.id, env.sender)
            return
        request = body.model_dump(exclude_unset=True)
        LOG.info("JSON-RPC %s id=%s from %s", request.get("method"), request.get("id"), env.sender)
        response = dispatch(self.verb, request)
        self.bus.reply(
            env, contracts.make("jsonrpc.reply", contracts.JsonRpcResponse(**response), self.host)
        )

    def stop(self) -> None:
        self.stopping.set()
        self.links_changed.set()  # ends the main loop's wait for the next beat

    def heartbeat(self, now: list[str] | None = None) -> None:
        """Tell the engine this host lives and carries ``now`` (default: look)."""
        now = bridges(self.netconf_dir) if now is None else now
        if self._reported is not None and now != self._reported:
            LOG.info("Host %s now carries bridges %s", self.host, ", ".join(now) or "(none)")
        self._reported = now
        self.bus.publish(
            contracts.ENGINE_QUEUE,
            contracts.make(
                "host.heartbeat",
                contracts.HostHeartbeat(host=self.host, started_at=self.started_at, bridges=now),
                self.host,
            ),
        )

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        # Inherited by the DHCP agent it starts: a SIGHUP ("re-read the mapping") that
        # reaches the agent before it installed its handler does not end it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        LOG.info("Host service starting on host %s", self.host)
        consumer = threading.Thread(
            target=self.bus.consume,
            name="jsonrpc",
            daemon=True,
            args=(contracts.host_queue(self.host), self.on_message, self.stopping),
        )
        consumer.start()
        threading.Thread(
            target=watch_links, name="links", daemon=True, args=(self.links_changed, self.stopping)
        ).start()
        # The bridges are looked up again only when a link changed (netlink) or VDSM
        # saved its configuration; between changes a heartbeat repeats what it knows,
        # and the loop sleeps until the next beat or change (VDSM's configuration is
        # looked at every 0.2 s where there is one; where its directory does not exist,
        # as in the lab, at each beat).
        next_beat, stamp, carried = 0.0, netconf_stamp(self.netconf_dir), None
        while not self.stopping.is_set():
            changed = self.links_changed.is_set()
            self.links_changed.clear()
            now_stamp = netconf_stamp(self.netconf_dir)
            if carried is None or changed or now_stamp != stamp:
                stamp = now_stamp
                try:
                    carried = bridges(self.netconf_dir)
                except Exception:
                    LOG.exception("Listing the bridges failed; retrying")
            if carried is not None and (time.monotonic() >= next_beat or carried != self._reported):
                try:
                    self.heartbeat(carried)
                except Exception:
                    LOG.exception("Heartbeat failed; retrying")
                next_beat = time.monotonic() + self.conf.host.heartbeat_interval
            wait = max(0.0, next_beat - time.monotonic()) if carried is not None else 1.0
            vdsm = self.netconf_dir is not None and os.path.isdir(self.netconf_dir)
            self.links_changed.wait(min(wait, NETCONF_LOOK_S) if vdsm else wait)
            if self.stopping.is_set():
                break
        LOG.info("Host service stopping; the DHCP agent keeps running")
        consumer.join(5)
        self.bus.close()
