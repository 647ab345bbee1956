"""Hosts as network namespaces for tests: each carries a bridge per oVirt network
(named as VDSM names it), uplinked to one L2 segment per network (a bridge in the
test's namespace, where VMs attach), and runs its own host service (and the agent
that starts) inside its namespace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
from pyroute2 import IPRoute, NetNS, netns

from tests.netlab import rand


class LabHost:
    def __init__(self, tmp: Path, name: str, bus: str, segments: dict[str, str]) -> None:
        self.tmp, self.name = tmp, name
        self.ns = f"tlh-{name}"
        self.prefix = f"t-{name}-"
        self.state = tmp / name
        self.state.mkdir(parents=True, exist_ok=True)
        netns.create(self.ns)
        with NetNS(self.ns) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        self.uplinks: list[str] = []
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
            heartbeat_interval = 0.5
            lease_time = 120
            [host]
            heartbeat_interval = 0.3
            agent_manager = direct
            """)
        )
        self.service: subprocess.Popen | None = None
        self.start()

    def add_bridge(self, vdsm_name: str, segment: str) -> None:
        up = f"tu{rand(8)}"
        with IPRoute() as ip:
            ip.link("add", ifname=up, kind="veth", peer={"ifname": "uplink", "net_ns_fd": self.ns})
            idx = ip.link_lookup(ifname=up)[0]
            ip.link("set", index=idx, master=ip.link_lookup(ifname=segment)[0], state="up")
        self.uplinks.append(up)
        with NetNS(self.ns) as ns:
            ns.link("add", ifname=vdsm_name, kind="bridge")
            br = ns.link_lookup(ifname=vdsm_name)[0]
            ns.link("set", index=br, state="up")
            port = ns.link_lookup(ifname="uplink")[0]
            ns.link("set", index=port, ifname=f"up-{vdsm_name}"[:15], master=br, state="up")

    def remove_bridge(self, vdsm_name: str) -> None:
        with NetNS(self.ns) as ns:
            ns.link("del", index=ns.link_lookup(ifname=vdsm_name)[0])

    def start(self) -> None:
        log = open(self.state / "host-service.log", "a")  # noqa: SIM115
        self.service = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{self.ns}",
                sys.executable,
                "-m",
                "ipam.cli.main",
                "host",
                "--config-file",
                str(self.conf),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def processes(self) -> list[psutil.Process]:
        """This host's agent and dnsmasq processes, by their state directory."""
        out = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if any(str(self.state) in arg for arg in cmd) and proc.pid != os.getpid():
                out.append(proc)
        return out

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
        if self.service and self.service.poll() is None:
            self.service.kill()
            self.service.wait()
        deadline = time.monotonic() + 10
        while (procs := self.processes()) and time.monotonic() < deadline:
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGKILL)
            psutil.wait_procs(procs, timeout=1)

    def close(self) -> None:
        self.kill()
        for name in netns.listnetns():
            if name.startswith(self.prefix):
                with contextlib.suppress(Exception):
                    netns.remove(name)
        with IPRoute() as ip:
            for up in self.uplinks:
                idx = ip.link_lookup(ifname=up)
                if idx:
                    with contextlib.suppress(Exception):
                        ip.link("del", index=idx[0])
        with contextlib.suppress(Exception):
            netns.remove(self.ns)
