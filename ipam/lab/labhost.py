"""A lab host: an oVirt host as a network namespace.

It carries a bridge per oVirt network, named as VDSM names it, each uplinked by a
veth to that network's L2 segment (a bridge in the caller's namespace or in the
lab's fabric namespace), and runs its own host service inside its namespace, which
starts the DHCP agent there when the engine places a network on it; the agent
starts dnsmasq. Every process of the host is found by the host's state directory
in its command line, and only those are ended.
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
from pyroute2 import netns

from dhcp_driver.netns import iproute_in
from ipam.lab.netparts import in_netns, new_namespace, rand
from ipam.lab.processes import end, ended, marked, spawn_detached


class LabHost:
    def __init__(
        self,
        tmp: Path,
        name: str,
        bus: str,
        segments: dict[str, str],
        *,
        ns: str | None = None,
        prefix: str | None = None,
        segment_ns: str | None = None,
        extra_conf: str = "",
        lease_time: int = 120,
        heartbeat_interval: float = 0.75,
        start: bool = True,
    ) -> None:
        """``segments`` maps each VDSM network name to its segment bridge (in
        ``segment_ns``; None: the caller's namespace). ``lease_time``: its agent's
        ``[dhcp_agent] lease_time`` (120 s, dnsmasq's minimum, unless said).
        ``heartbeat_interval``: its host service's and agent's, in seconds (a third
        of the engine's host_down_time or less, as the defaults are: 2 s and 6 s)."""
        self.tmp, self.name = tmp, name
        self.ns = ns or f"tlh-{name}"
        self.prefix = prefix or f"t-{name}-"
        self.state = tmp / name
        self.state.mkdir(parents=True, exist_ok=True)
        self.segment_ns = segment_ns
        self.uplinks: list[str] = []
        self.bridges: list[str] = []
        self.service_pid: int | None = None
        new_namespace(self.ns)
        for vdsm_name, segment in segments.items():
            self.add_bridge(vdsm_name, segment)
        self.conf = self.state / "host.conf"
        self.conf.write_text(
            textwrap.dedent(f"""\
            [DEFAULT]
            state_path = {self.state}
            transport_url = {bus}
            [dhcp_agent]
            host = {name}
            mapping_file = {self.state}/dhcp-networks.json
            namespace_prefix = {self.prefix}
            heartbeat_interval = {heartbeat_interval}
            lease_time = {lease_time}
            [host]
            heartbeat_interval = {heartbeat_interval}
            agent_manager = direct
            """)
            + extra_conf
        )
        if start:
            self.start()

    # -- a record of it, for the lab's later commands ---------------------------------

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.ns,
            "dhcp_namespace_prefix": self.prefix,
            "state": str(self.state),
            "segment_namespace": self.segment_ns,
            "uplinks": self.uplinks,
            "bridges": self.bridges,
            "service_pid": self.service_pid,
        }

    @classmethod
    def attach(cls, rec: dict[str, Any]) -> LabHost:
        host = cls.__new__(cls)
        host.name, host.ns, host.prefix = (
            rec["name"],
            rec["namespace"],
            rec["dhcp_namespace_prefix"],
        )
        host.state = Path(rec["state"])
        host.tmp = host.state.parent
        host.conf = host.state / "host.conf"
        host.segment_ns = rec["segment_namespace"]
        host.uplinks, host.bridges = list(rec["uplinks"]), list(rec["bridges"])
        host.service_pid = rec["service_pid"]
        return host

    # -- its network ----------------------------------------------------------------------

    def add_bridge(self, vdsm_name: str, segment: str) -> None:
        up = f"tu{rand(8)}"
        with iproute_in(self.segment_ns) as ip:
            ip.link("add", ifname=up, kind="veth", peer={"ifname": "uplink", "net_ns_fd": self.ns})
            idx = ip.link_lookup(ifname=up)[0]
            ip.link("set", index=idx, master=ip.link_lookup(ifname=segment)[0], state="up")
        self.uplinks.append(up)
        with iproute_in(self.ns) as ns:
            ns.link("add", ifname=vdsm_name, kind="bridge")
            br = ns.link_lookup(ifname=vdsm_name)[0]
            ns.link("set", index=br, state="up")
            port = ns.link_lookup(ifname="uplink")[0]
            ns.link("set", index=port, ifname=f"up-{vdsm_name}"[:15], master=br, state="up")
        self.bridges.append(vdsm_name)

    def remove_bridge(self, vdsm_name: str) -> None:
        with iproute_in(self.ns) as ns:
            ns.link("del", index=ns.link_lookup(ifname=vdsm_name)[0])
        self.bridges.remove(vdsm_name)

    def set_uplinks(self, up: bool) -> None:
        """Cut the host off its segments (a host gone dark) or join it again."""
        with iproute_in(self.segment_ns) as ip:
            for name in self.uplinks:
                for idx in ip.link_lookup(ifname=name):
                    ip.link("set", index=idx, state="up" if up else "down")

    # -- its processes ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the host service inside the host's namespace, in a session of its own
        (it outlives the command that started it; the lab ends it by pid)."""
        argv = [sys.executable, "-m", "ipam.cli.main", "host", "--config-file", str(self.conf)]
        proc = spawn_detached(in_netns(self.ns, argv), self.state / "host-service.log")
        self.service_pid = proc.pid
        self._child = proc

    def service_alive(self) -> bool:
        """The host service runs: the pid is alive and is ours (its command line names
        this host's configuration)."""
        return bool(self.service_pid) and any(
            p.pid == self.service_pid and p.status() != psutil.STATUS_ZOMBIE
            for p in self.processes()
        )

    def processes(self) -> list[psutil.Process]:
        """This host's host service, agent and dnsmasq processes, by their state directory
        (not their zombies)."""
        return [p for p in marked(f"{self.state}/") if not ended(p)]

    def dnsmasq_networks(self) -> set[str]:
        nets = set()
        for proc in self.processes():
            for arg in proc.info["cmdline"] or []:
                if arg.startswith("--conf-file=") and "/dhcp/" in arg:
                    nets.add(Path(arg.split("=", 1)[1]).parent.name)
        return nets

    def kill(self) -> None:
        """The host dies: every process of it, at once (again while an agent that was
        just killed may have spawned a dnsmasq)."""
        deadline = time.monotonic() + 10
        while (procs := self.processes()) and time.monotonic() < deadline:
            end(procs, grace=0)
        child = getattr(self, "_child", None)
        if child is not None:
            child.wait()  # reap it when this process started it

    def close(self) -> None:
        """Kill its processes and remove its DHCP namespaces, uplinks and namespace."""
        self.kill()
        for name in netns.listnetns():
            if name.startswith(self.prefix):
                with contextlib.suppress(Exception):
                    netns.remove(name)
        with contextlib.suppress(Exception), iproute_in(self.segment_ns) as ip:
            for up in self.uplinks:
                idx = ip.link_lookup(ifname=up)
                if idx:
                    with contextlib.suppress(Exception):
                        ip.link("del", index=idx[0])
        with contextlib.suppress(Exception):
            netns.remove(self.ns)
