"""Parts of the DHCP agent benchmark (bench.ack_latency): a stand-in engine on the
bus, synthetic network states, a real ``ovirt-ipam dhcp-agent`` process, test
bridges, and a plain dnsmasq fed by ``--dhcp-hostsfile`` (the rewrite-and-SIGHUP
approach) with a DHCP probe that proves when a reload is complete.

Everything created here carries a random tag and is removed by its owner, ended by
pid (never by name).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel
from pyroute2 import IPRoute, NetNS, netns

from dhcp_driver.dnsmasq_log import LogFollower, parse
from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.mapping import write_mapping
from ipam import config as ipam_config
from ipam.bus import contracts
from ipam.bus.contracts import (
    DhcpOpt,
    Envelope,
    FixedIp,
    NetworkInfo,
    NetworkState,
    PortEvent,
    PortState,
    SubnetState,
    SyncReply,
)
from ipam.bus.messaging import Bus
from ipam.lab.harness import AgentProcess, dnsmasq_pids, end_pids, stop_process

SENDER = "ovirt-ipam-bench-engine"
DHCP_OWNER = "network:dhcp"
#: The agent's own default ([bus] polling_interval), used by both ends of the bus.
POLLING_INTERVAL: float = next(
    o.default for o in ipam_config.bus_opts if o.name == "polling_interval"
)


def tag(n: int = 6) -> str:
    return secrets.token_hex(n)[:n]


def progress(msg: str) -> None:
    print(f"# {msg}", flush=True)


# -- synthetic engine state ---------------------------------------------------------------


BOOTFILE = DhcpOpt(opt_name="bootfile-name", opt_value="pxelinux.0")


class SyntheticNetwork:
    """One network with one /16 DHCP subnet, a DHCP port and ``ports`` VM ports;
    with ``ipv6`` also a /64 DHCPv6 subnet (no modes: stateful, as the engine makes
    it), each port then holding an address of each.

    ``index`` (0-255) makes MACs and the subnets (10.<index>.0.0/16,
    fd00:<index>::/64) unique across the networks of one run. With ``named`` the
    network has a domain and the DNS service, and each port a dns_name and a boot
    file (three files per port for dnsmasq instead of one).
    """

    def __init__(
        self, index: int, bridge: str, ports: int, ipv6: bool = False, named: bool = False
    ) -> None:
        self.index, self.bridge, self.named = index, bridge, named
        self.id = str(uuid.uuid4())
        self.subnet_id = str(uuid.uuid4())
        self.subnet6_id = str(uuid.uuid4()) if ipv6 else None
        self.cidr = f"10.{index}.0.0/16"
        self.next_port = 0
        self.dhcp_port = PortState(
            id=str(uuid.uuid4()),
            network_id=self.id,
            mac_address=f"02:fe:00:00:{index:02x}:02",
            fixed_ips=[
                FixedIp(subnet_id=self.subnet_id, ip_address=f"10.{index}.0.2"),
                *self._address6(2),
            ],
            revision_number=1,
            device_owner=DHCP_OWNER,
            admin_state_up=True,
        )
        self.ports: list[PortState] = [self.new_port() for _ in range(ports)]

    def new_port(self) -> PortState:
        """A port never seen before: fresh id, MAC and IP (revision 1)."""
        j = self.next_port
        self.next_port += 1
        host = j + 10  # .0.1 gateway, .0.2 DHCP port
        if host > 65533:
            raise ValueError("the /16 is full")
        return PortState(
            id=str(uuid.uuid4()),
            network_id=self.id,
            mac_address=f"02:{self.index:02x}:00:{j >> 16 & 255:02x}:{j >> 8 & 255:02x}:"
            f"{j & 255:02x}",
            fixed_ips=[
                FixedIp(
                    subnet_id=self.subnet_id, ip_address=f"10.{self.index}.{host >> 8}.{host & 255}"
                ),
                *self._address6(host),
            ],
            revision_number=1,
            device_owner="oVirt",
            admin_state_up=True,
            dns_name=f"vm-{j}" if self.named else None,
            extra_dhcp_opts=[BOOTFILE] if self.named else [],
        )

    def _address6(self, host: int) -> list[FixedIp]:
        if self.subnet6_id is None:
            return []
        return [FixedIp(subnet_id=self.subnet6_id, ip_address=f"fd00:{self.index:x}::{host:x}")]

    def state(self) -> NetworkState:
        return NetworkState(
            network=NetworkInfo(
                id=self.id,
                vdsm_name=self.bridge,
                mtu=1500,
                admin_state_up=True,
                revision_number=1,
                dns_domain="bench.example." if self.named else None,
                dns_service=self.named,
            ),
            subnets=[
                SubnetState(
                    id=self.subnet_id,
                    cidr=self.cidr,
                    gateway_ip=f"10.{self.index}.0.1",
                    enable_dhcp=True,
                    dns_nameservers=[],
                    host_routes=[],
                    revision_number=1,
                ),
                *(
                    [
                        SubnetState(
                            id=self.subnet6_id,
                            cidr=f"fd00:{self.index:x}::/64",
                            gateway_ip=None,
                            enable_dhcp=True,
                            dns_nameservers=[],
                            host_routes=[],
                            revision_number=1,
                            ip_version=6,
                        )
                    ]
                    if self.subnet6_id
                    else []
                ),
            ],
            ports=[*self.ports, self.dhcp_port],
            dhcp_port=self.dhcp_port,
        )


# -- the engine's side of the bus ---------------------------------------------------------


class FakeEngine:
    """Consumes ENGINE_QUEUE: answers sync.request from the synthetic networks, and
    records when the first acknowledgement of each (port id, revision) arrived."""

    def __init__(self, url: str, polling_interval: float = POLLING_INTERVAL) -> None:
        self.bus = Bus(url, polling_interval=polling_interval, name="bench-engine")
        self.networks: dict[str, SyntheticNetwork] = {}
        self.acked: dict[tuple[str, int], float] = {}
        self.ack_messages = 0
        self.syncs: list[tuple[float, int]] = []  # (when, networks asked)
        self.heartbeats = 0
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.bus.consume,
            args=(contracts.ENGINE_QUEUE, self._handle, self._stop),
            name="bench-engine",
            daemon=True,
        )
        self._thread.start()

    def add(self, net: SyntheticNetwork) -> None:
        self.networks[net.id] = net

    def _handle(self, env: Envelope, body: BaseModel) -> None:
        now = time.monotonic()
        # The body's model follows from env.type (contracts.TYPES).
        if isinstance(body, contracts.PortAck):  # port.ack
            with self.cond:
                self.ack_messages += 1
                for p in body.ports:
                    self.acked.setdefault((p.id, p.revision_number), now)
                self.cond.notify_all()
        elif isinstance(body, contracts.SyncRequest):  # sync.request
            asked = body.networks
            self.syncs.append((now, len(asked)))
            states = [self.networks[n].state() for n in asked if n in self.networks]
            missing = [n for n in asked if n not in self.networks]
            self.bus.reply(
                env,
                contracts.make("sync.reply", SyncReply(networks=states, missing=missing), SENDER),
            )
        elif isinstance(body, contracts.Heartbeat):  # agent.heartbeat
            self.heartbeats += 1

    def publish_port(self, host: str, port: PortState) -> float:
        """Publish a port.update to the agent; returns the monotonic time just before."""
        env = contracts.make("port.update", PortEvent(port=port), SENDER)
        started = time.monotonic()
        self.bus.publish(contracts.agent_queue(host), env)
        return started

    def wait_acked(
        self,
        keys: Iterable[tuple[str, int]],
        timeout: float,
        alive: Any = None,
    ) -> float:
        """Block until every (port id, revision) is acknowledged; returns the time the
        last of them arrived. TimeoutError, or RuntimeError when alive() turns False."""
        keys = list(keys)
        wanted = set(keys)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                wanted = {k for k in wanted if k not in self.acked}
                if not wanted:
                    return max((self.acked[k] for k in keys), default=time.monotonic())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(wanted)} port(s) not acknowledged in {timeout}s")
                if alive is not None and not alive():
                    raise RuntimeError("the agent process exited")
                self.cond.wait(min(left, 0.5))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.bus.close()


# -- bridges, the agent process -----------------------------------------------------------


class Bridges:
    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> str:
        with IPRoute() as ip:
            ip.link("add", ifname=name, kind="bridge")
            self.names.append(name)
            ip.link("set", index=ip.link_lookup(ifname=name)[0], state="up")
        return name

    def remove_all(self) -> None:
        with IPRoute() as ip:
            for name in self.names:
                with contextlib.suppress(Exception):
                    idx = ip.link_lookup(ifname=name)
                    if idx:
                        ip.link("del", index=idx[0])
        self.names.clear()


class BenchAgent(AgentProcess):
    """The agent as the benchmark runs it (ipam.lab.harness.AgentProcess): everything in
    ``workdir`` (agent.conf, state/, mapping.json, agent.log), the bus polled every
    ``polling_interval`` s, no periodic resync; sampled by py-spy on demand."""

    def __init__(
        self,
        workdir: Path,
        transport_url: str,
        host: str,
        prefix: str,
        polling_interval: float = POLLING_INTERVAL,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            workdir / "agent.conf",
            workdir / "state",
            workdir / "agent.log",
            transport_url,
            host,
            workdir / "mapping.json",
            prefix,
            options="resync_interval = 3600\nconfirm_timeout = 10\n",
            sections=f"[bus]\npolling_interval = {polling_interval}\n",
        )
        self.profiler: subprocess.Popen | None = None

    def profile(self, out: Path, gil: bool = False) -> None:
        """Sample the running agent with py-spy (collapsed stacks per thread) until stop."""
        argv = ["py-spy", "record", "--nonblocking", "--threads", "--format", "raw"]
        assert self.proc is not None
        argv += ["-r", "250", "-o", str(out), "-p", str(self.proc.pid)]
        self.profiler = subprocess.Popen(
            [*argv, "--gil"] if gil else argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop_profile(self) -> None:
        prof, self.profiler = self.profiler, None
        stop_process(prof, 60, signal.SIGINT)  # py-spy writes its output on SIGINT

    def serve(self, networks: list[SyntheticNetwork]) -> None:
        write_mapping(self.mapping, [{"name": n.bridge, "id": n.id} for n in networks])

    def rss_mb(self) -> float:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def num_threads(self) -> int:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).num_threads()

    def cpu_times(self) -> Any:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).cpu_times()

    def logs(self, tail: int | None = 4000) -> str:
        """The last ``tail`` characters of its log."""
        return super().logs(tail)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.stop_profile()
        super().stop(sig)

    def cleanup(self) -> None:
        """Stop the agent, the dnsmasq processes it started, its namespaces and veths."""
        self.stop()
        end_pids(self.dnsmasq_pids())
        with contextlib.suppress(Exception):
            OvirtInterfaceDriver(str(self.mapping), self.prefix).cleanup_stale(set())


# -- RabbitMQ: a throw-away vhost ------------------------------------------------------------


class RabbitVhost:
    """A vhost of its own (rabbitmqctl), so the shared ``ovirt-ipam.engine`` queue of
    other users of the broker is not touched; deleting it deletes its queues."""

    def __init__(self, name: str, user: str = "guest") -> None:
        self.name, self.user, self.created = name, user, False

    def _ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    def create(self) -> str:
        self._ctl("add_vhost", self.name)
        self.created = True
        self._ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
        return f"amqp://{self.user}:{self.user}@127.0.0.1:5672/{self.name}"

    def delete(self) -> None:
        if self.created:
            self._ctl("delete_vhost", self.name)
            self.created = False


# -- the rewrite-the-hostsfile-and-SIGHUP approach ------------------------------------------


def _dhcp_discover(mac: str, xid: int) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", "")) + b"\0" * 10
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,
        1,
        6,
        0,
        xid,
        0,
        0x8000,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        chaddr,
        b"",
        b"",
    )
    options = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"
    return (head + options).ljust(300, b"\0")


def _is_offer(packet: bytes, xid: int) -> str | None:
    """The offered IP if packet is a DHCPOFFER for xid."""
    if len(packet) < 240 or packet[0] != 2 or struct.unpack("!I", packet[4:8])[0] != xid:
        return None
    opts, i = packet[240:], 0
    while i + 1 < len(opts) and opts[i] != 255:
        if opts[i] == 0:
            i += 1
            continue
        code, length = opts[i], opts[i + 1]
        if code == 53 and length == 1 and opts[i + 2] == 2:
            return socket.inet_ntoa(packet[16:20])
        i += 2 + length
    return None


class HostsfileDnsmasq:
    """A plain dnsmasq in a namespace of its own (veth to a client namespace), fed by
    ``--dhcp-hostsfile``: every added host rewrites the whole file (temp + rename) and
    sends SIGHUP, the way Neutron's DHCP agent does.

    ``add_host`` returns (seconds until dnsmasq logged ``read FILE``, seconds until a
    DHCPDISCOVER for the new MAC, sent from the client namespace once that line is
    logged, got its DHCPOFFER), both from the start of the rewrite.
    """

    NET = 99  # 10.99.0.0/16

    def __init__(self, workdir: Path, tag_: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "log").mkdir(exist_ok=True)
        self.ns_srv, self.ns_cli = f"ovirt-ipam-bench-{tag_}-srv", f"ovirt-ipam-bench-{tag_}-cli"
        self.if_srv, self.if_cli = f"bks{tag_}", f"bkc{tag_}"
        self.hostsfile = workdir / "hosts"
        self.logfile = workdir / "log" / "dnsmasq.log"
        self.lines: list[str] = []
        self.next_host = 0
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.follower: LogFollower | None = None
        self.xid = secrets.randbits(32)
        self._plumbed = False

    def plumb(self) -> None:
        netns.create(self.ns_srv)
        netns.create(self.ns_cli)
        self._plumbed = True
        with IPRoute() as ip:
            ip.link(
                "add",
                ifname=self.if_srv,
                kind="veth",
                peer={"ifname": self.if_cli, "net_ns_fd": self.ns_cli},
            )
            ip.link("set", index=ip.link_lookup(ifname=self.if_srv)[0], net_ns_fd=self.ns_srv)
        for ns, ifname, addr in (
            (self.ns_srv, self.if_srv, f"10.{self.NET}.0.1"),
            (self.ns_cli, self.if_cli, f"10.{self.NET}.255.254"),
        ):
            with NetNS(ns) as nsr:
                idx = nsr.link_lookup(ifname=ifname)[0]
                nsr.link("set", index=idx, state="up")
                nsr.addr("add", index=idx, address=addr, prefixlen=16)
                nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
        netns.pushns(self.ns_cli)  # this thread only, for the socket's creation
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        finally:
            netns.popns()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.if_cli.encode())
        sock.bind(("0.0.0.0", 68))
        self.sock = sock

    def _entry(self) -> tuple[str, str]:
        j = self.next_host
        self.next_host += 1
        host = j + 10
        mac = f"02:{self.NET:02x}:00:{j >> 16 & 255:02x}:{j >> 8 & 255:02x}:{j & 255:02x}"
        return mac, f"10.{self.NET}.{host >> 8}.{host & 255}"

    def _write(self) -> None:
        tmp = self.hostsfile.with_name(".hosts.tmp")
        with open(tmp, "w") as f:
            f.write("".join(self.lines))
        os.rename(tmp, self.hostsfile)

    def _wait_read(self, deadline: float) -> float:
        assert self.follower is not None
        path = str(self.hostsfile)
        while True:
            for line in self.follower.lines():
                event = parse(line)
                if event is not None and event.kind == "read" and event.path == path:
                    return time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                raise TimeoutError(f"dnsmasq did not log 'read {path}'")
            self.follower.wait(min(left, 0.5))

    def _probe(self, mac: str, ip: str, deadline: float) -> float:
        """DHCPDISCOVER for mac until its DHCPOFFER of ip arrives; returns that time."""
        assert self.sock is not None
        while True:
            self.xid = (self.xid + 1) & 0xFFFFFFFF
            self.sock.sendto(_dhcp_discover(mac, self.xid), ("255.255.255.255", 67))
            resend = time.monotonic() + 0.5
            while time.monotonic() < resend:
                self.sock.settimeout(max(0.001, resend - time.monotonic()))
                try:
                    packet = self.sock.recv(4096)
                except TimeoutError:
                    break
                offered = _is_offer(packet, self.xid)
                if offered is not None:
                    if offered != ip:
                        raise RuntimeError(f"dnsmasq offered {offered} to {mac}, not {ip}")
                    return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no DHCPOFFER for {mac}")

    def start(self, hosts: int) -> None:
        self.lines = []
        for _ in range(hosts):
            mac, ip = self._entry()
            self.lines.append(f"{mac},{ip}\n")
        self._write()
        self.follower = LogFollower(str(self.logfile))
        self.follower.skip_to_end()
        ns = self.ns_srv
        wd = self.workdir
        (wd / "empty.conf").touch()
        with open(wd / "dnsmasq.stderr", "ab") as err:
            self.proc = subprocess.Popen(
                [
                    "dnsmasq",
                    "--keep-in-foreground",
                    f"--conf-file={wd}/empty.conf",
                    "--port=0",
                    "--no-resolv",
                    "--no-hosts",
                    f"--interface={self.if_srv}",
                    "--bind-interfaces",
                    "--except-interface=lo",
                    f"--dhcp-range=10.{self.NET}.0.0,static,255.255.0.0,120s",
                    "--dhcp-lease-max=65536",
                    f"--dhcp-hostsfile={self.hostsfile}",
                    f"--dhcp-leasefile={wd}/leases",
                    f"--pid-file={wd}/dnsmasq.pid",
                    f"--log-facility={self.logfile}",
                    "--user=root",
                    "--group=root",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=lambda: netns.setns(ns, flags=0),
                start_new_session=True,
            )
        self._wait_read(time.monotonic() + 60)

    def add_host(self) -> tuple[float, float]:
        assert self.proc is not None and self.follower is not None
        mac, ip = self._entry()
        self.follower.skip_to_end()
        started = time.monotonic()
        self.lines.append(f"{mac},{ip}\n")
        self._write()
        self.proc.send_signal(signal.SIGHUP)
        read_at = self._wait_read(started + 30)
        offer_at = self._probe(mac, ip, started + 30)
        return read_at - started, offer_at - started

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None
        if self.follower is not None:
            self.follower.close()
            self.follower = None

    def close(self) -> None:
        self.stop()
        end_pids(dnsmasq_pids(str(self.workdir) + "/"))
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._plumbed:
            for ns in (self.ns_srv, self.ns_cli):
                with contextlib.suppress(Exception):
                    netns.remove(ns)  # the veth pair goes with its namespaces
            self._plumbed = False


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- inotify instances (one per dnsmasq with a hostsdir, one per agent log follower) --------

INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


def inotify_limit() -> int:
    return int(INOTIFY_INSTANCES.read_text())


def set_inotify_limit(value: int) -> None:
    INOTIFY_INSTANCES.write_text(f"{value}\n")


def inotify_instances(uid: int = 0, pids: Iterable[int] | None = None) -> int:
    """inotify instances open by processes of uid (or by the given pids)."""
    count = 0
    for proc in psutil.process_iter(["uids"]) if pids is None else map(psutil.Process, pids):
        try:
            if pids is None and proc.info["uids"].real != uid:
                continue
            fd_dir = f"/proc/{proc.pid}/fd"
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{fd_dir}/{fd}") == "anon_inode:inotify":
                        count += 1
        except (OSError, psutil.Error):
            continue
    return count
