"""``ovirt-ipam lab``: a whole oVirt data center's DHCP on one machine, real parts only.

What ``up`` builds (DESIGN.md "The lab")::

    <lab>-fabric            one L2 segment (a bridge) per network
      ├── <lab>-host1       bridges named as VDSM names them, uplinked to the
      │     host service      segments; host service, and the DHCP agent and its
      │     DHCP agent        dnsmasq processes once the engine places a network
      │     <lab>-host1-dhcp-<network id>   (one per served network)
      ├── <lab>-host2 ...
      └── <lab>-vmN         a VM: eth0 on a host's bridge (vnetN), a real DHCP client
                            that keeps running (ipam.lab.dhcpclient), as a VM's does

    ``--ipv6 MODE``: every network is dual stack, an IPv6 /64 beside its IPv4 subnet;
    its mode (``mixed``: stateful, slaac, stateless in turn over the networks) says how
    its VMs configure IPv6: a dhclient -6 that keeps running (stateful), the kernel's
    SLAAC (slaac), SLAAC and a one-shot dhclient -6 -S for the DNS servers (stateless).

    engine (API on 127.0.0.1:PORT, DHCP manager) in the machine's own namespace,
    store and bus embedded in the lab directory, or PostgreSQL / RabbitMQ by flag
    (a relay puts 127.0.0.1:<broker port> inside each host, see ipam.lab.relay).

Every namespace is named "<lab>-..."; every process the lab starts carries the lab
directory in its command line; ``down`` ends those processes by pid, removes those
namespaces (their links go with them) and the directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from pyroute2 import netns

from dhcp_driver.dnsmasq_config import rebind_time
from ipam.bus import contracts
from ipam.bus.messaging import mask_url
from ipam.lab import processes, record
from ipam.lab.dhcpclient import (
    CONFIGURED,
    LOST,
    AddressWatch,
    Event,
    VmClient,
    VmClient6,
    eth0_addresses,
    eth0_addresses6,
    flush_eth0,
    longest_loss,
)
from ipam.lab.harness import CLI, UpgradeFailed, db_upgrade
from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, Vm, new_namespace, random_mac
from ipam.lab.processes import spawn_detached
from ipam.lab.record import LabError
from ipam.polling import wait_for

Progress = Callable[[str], None]
HOST_DOWN_TIME = 3.0  # the lab's engine: a host is down 3 s after its last heartbeat
# Its host services' and agents' heartbeats: three per host_down_time, the ratio of the
# defaults (2 s and 6 s). Each heartbeat is a message the engine stores, most of what
# an idle lab costs (issue 18: under 2 % of a core).
HEARTBEAT_INTERVAL = HOST_DOWN_TIME / 3
# how long a booting VM's first lease is waited for (its client goes on trying after):
# udhcpc DISCOVERs at 0, 3 and 6 s; dhclient at about 0, 4 and 10 s
LEASE_WAIT_S = {"udhcpc": 9.0, "dhclient": 12.0}
CLIENTS = ("udhcpc", "dhclient", "both")
LEASE_TIME = 120  # the lab agents' lease time: dnsmasq's minimum (it raises less to 120)
WATCH_INTERVAL = 0.5  # seconds between looks at the VMs' eth0 while watching a failover
# --ipv6: how each network's IPv6 subnet configures its VMs; "mixed" cycles the three
IPV6_MODES = ("stateful", "slaac", "stateless", "mixed")
IPV6_CYCLE = ("stateful", "slaac", "stateless")
# a mode's ipv6_address_mode = ipv6_ra_mode (stateful: none set, as the oVirt engine sends)
NEUTRON_MODE = {"stateful": None, "slaac": "slaac", "stateless": "dhcpv6-stateless"}
# how long booted VMs' IPv6 addresses are waited for: the kernel solicits a router up to
# 1 s after link up, dhclient -6 delays its first SOLICIT up to 1 s
IPV6_WAIT_S = 10.0


@dataclass
class UpOptions:
    hosts: int = 3
    networks: int = 2
    vms: int = 20
    ha: list[int] = field(default_factory=lambda: [2, 1])
    port: int = 9696
    transport_url: str | None = None  # None: kombu filesystem:// in the lab directory
    database: str | None = None  # None: SQLite in the lab directory
    client: str = "udhcpc"
    lease_time: int = LEASE_TIME
    ipv6: str | None = None  # None: IPv4 only; else one of IPV6_MODES

    def check(self) -> None:
        limits = {"hosts": (1, 20), "networks": (1, 50), "vms": (0, 500)}
        for key, (low, high) in limits.items():
            value = getattr(self, key)
            if not low <= value <= high:
                raise LabError(f"--{key} must be between {low} and {high}, not {value}")
        if not self.ha or any(not 0 <= h <= 20 for h in self.ha):
            raise LabError(f"--ha takes HA counts between 0 and 20, not {self.ha}")
        if not 1 <= self.port <= 65535:
            raise LabError(f"--port must be a TCP port, not {self.port}")
        if self.client not in CLIENTS:
            raise LabError(f"--client must be one of {', '.join(CLIENTS)}")
        if self.ipv6 is not None and self.ipv6 not in IPV6_MODES:
            raise LabError(f"--ipv6 must be one of {', '.join(IPV6_MODES)}")
        if not 120 <= self.lease_time <= 31_536_000:
            raise LabError(
                f"--lease-time must be between 120 (dnsmasq's minimum) and 31536000 seconds, "
                f"not {self.lease_time}"
            )
        if self.transport_url and not self.transport_url.startswith(("amqp://", "amqps://")):
            raise LabError("--transport-url takes an amqp:// or amqps:// URL (RabbitMQ)")
        if self.transport_url and not _loopback(urlsplit(self.transport_url).hostname or ""):
            raise LabError(
                "the lab keeps its traffic on this machine: --transport-url must name a "
                "broker on 127.0.0.1 or localhost"
            )
        if self.database and not self.database.startswith("postgresql"):
            raise LabError("--database takes a PostgreSQL URL (postgresql+psycopg://...)")


def _loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


def _quiet(_: str) -> None:
    return None


class Lab:
    """One lab, by name, under a base directory; every command holds its lock."""

    def __init__(
        self, name: str, base: Path = record.DEFAULT_BASE, progress: Progress = _quiet
    ) -> None:
        self.name = record.check_name(name)
        self.dir = record.lab_dir(base, name)
        self.progress = progress
        self.rec: dict[str, Any] = {}

    # -- up ---------------------------------------------------------------------------

    def up(self, opts: UpOptions) -> dict[str, Any]:
        opts.check()
        _require_root()
        _require_tools(opts.client, [] if opts.ipv6 is None else [opts.ipv6])
        with record.locked(self.dir):
            existing = record.load(self.dir)
            if existing is not None:
                self.rec = existing
                if self._engine_alive():
                    self.progress(
                        f"lab {self.name} is already up (engine pid {existing['engine_pid']}); "
                        "'ovirt-ipam lab down' first to build it anew"
                    )
                    return self._status()
                self.progress(f"lab {self.name} was left half made: removing it first")
                self._down()
            elif self._leftovers():
                self.progress(f"removing what an earlier lab {self.name} left behind")
                self._down()
            _require_free_port(opts.port)
            started = time.monotonic()
            self._build(opts)
            self.progress(f"lab {self.name} is up in {time.monotonic() - started:.1f} s")
            return self._status()

    def _build(self, opts: UpOptions) -> None:
        self.dir.mkdir(parents=True, mode=0o700)
        bus = opts.transport_url or f"filesystem://{self.dir}/bus"
        self.rec = {
            "name": self.name,
            "directory": str(self.dir),
            "api_url": f"http://127.0.0.1:{opts.port}",
            "transport_url": bus,
            "database": opts.database,
            "fabric_namespace": f"{self.name}-fabric",
            "engine_pid": None,
            "relay_pid": None,
            "networks": [],
            "hosts": [],
            "vms": [],
            "next_vm": 1,
            "lease_time": opts.lease_time,
        }
        record.save(self.dir, self.rec)

        fabric = self.rec["fabric_namespace"]
        new_namespace(fabric)
        nets: list[dict[str, Any]] = [
            {
                "name": f"{self.name}-net{i}",
                "segment": f"net{i}",
                "cidr": f"10.{100 + i}.0.0/24",
                "ha_count": opts.ha[(i - 1) % len(opts.ha)],
                "ipv6": _ipv6_subnet(self.name, i, opts.ipv6) if opts.ipv6 else None,
            }
            for i in range(1, opts.networks + 1)
        ]
        for net in nets:
            Bridge(net["segment"], namespace=fabric)
        self.progress(f"fabric {fabric}: one L2 segment per network ({len(nets)})")

        self._start_engine(opts, bus)
        with self._api() as api:
            for net in nets:
                made = _ok(
                    api.post(
                        "/v2.0/networks",
                        json={"network": {"name": net["name"], "ha_count": net["ha_count"]}},
                    ),
                    f"create network {net['name']}",
                )["network"]
                net.update(id=made["id"], vdsm_name=made["vdsm_name"])
                _ok(
                    api.post(
                        "/v2.0/subnets",
                        json={
                            "subnet": {
                                "network_id": made["id"],
                                "name": f"{net['name']}-subnet",
                                "cidr": net["cidr"],
                            }
                        },
                    ),
                    f"create subnet {net['cidr']}",
                )
                if net["ipv6"]:
                    net["ipv6"]["subnet_id"] = self._create_subnet6(api, net)
                self.rec["networks"].append(net)
                record.save(self.dir, self.rec)
                self.progress(
                    f"network {net['name']} ({net['id']}): {net['cidr']}"
                    + (f", {net['ipv6']['cidr']} {net['ipv6']['mode']}" if net["ipv6"] else "")
                    + f", HA count {net['ha_count']}"
                )

            for i in range(1, opts.hosts + 1):
                name = f"{self.name}-host{i}"
                self.rec["hosts"].append({"name": name, "namespace": name, "pending": True})
                record.save(self.dir, self.rec)
                host = LabHost(
                    self.dir / "hosts",
                    name,
                    bus,
                    {n["vdsm_name"]: n["segment"] for n in nets},
                    ns=name,
                    prefix=f"{name}-dhcp-",
                    segment_ns=fabric,
                    lease_time=opts.lease_time,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    start=False,
                )
                self.rec["hosts"][-1] = {**host.record(), "killed": False}
                record.save(self.dir, self.rec)
            if opts.transport_url:
                self._start_relay(opts.transport_url)
            for rec_host in self.rec["hosts"]:
                host = LabHost.attach(rec_host)
                host.start()
                rec_host["service_pid"] = host.service_pid
                record.save(self.dir, self.rec)
                self.progress(
                    f"host {host.name}: namespace {host.ns}, bridges {', '.join(host.bridges)}, "
                    f"host service pid {host.service_pid}"
                )
            self._wait_served(api, self.rec["networks"], set(), 60)
            if opts.vms:
                self._boot_many(api, opts.vms, None, None, opts.client)

    @staticmethod
    def _create_subnet6(api: httpx.Client, net: dict[str, Any]) -> str:
        """The network's IPv6 subnet, created as the lab creates IPv4 ones: its id."""
        v6 = net["ipv6"]
        body: dict[str, Any] = {
            "network_id": net["id"],
            "name": f"{net['name']}-subnet6",
            "ip_version": 6,
            "cidr": v6["cidr"],
            "dns_nameservers": [v6["dns"]],
        }
        mode = NEUTRON_MODE[v6["mode"]]
        if mode:
            body.update(ipv6_address_mode=mode, ipv6_ra_mode=mode)
        made = _ok(api.post("/v2.0/subnets", json={"subnet": body}), f"create subnet {v6['cidr']}")
        return str(made["subnet"]["id"])

    def _start_engine(self, opts: UpOptions, bus: str) -> None:
        conf = self.dir / "engine.conf"
        lines = [
            "[DEFAULT]",
            f"state_path = {self.dir}/engine",
            f"transport_url = {bus}",
            "[api]",
            "bind_host = 127.0.0.1",
            f"bind_port = {opts.port}",
            "[dhcp]",
            f"host_down_time = {HOST_DOWN_TIME}",
            "startup_grace = 1",
            "ready_timeout = 15",
        ]
        if opts.database:
            lines += ["[database]", f"connection = {opts.database}"]
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        if opts.database:
            self.progress("store: PostgreSQL, upgrading its schema")
            try:
                db_upgrade(conf)
            except UpgradeFailed as exc:
                raise LabError(f"cannot upgrade the store's schema: {exc.stderr.strip()}") from None
        proc = spawn_detached([*CLI, "engine", "--config-file", str(conf)], self.dir / "engine.log")
        self.rec["engine_pid"] = proc.pid
        record.save(self.dir, self.rec)

        def api_up() -> bool:
            if proc.poll() is not None:
                raise LabError(
                    f"the engine exited with {proc.returncode}; see {self.dir}/engine.log"
                )
            try:
                return httpx.get(self.rec["api_url"] + "/", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(api_up, 60, "the engine's API", interval=0.1)
        store = mask_url(opts.database) if opts.database else "SQLite in the lab directory"
        self.progress(
            f"engine pid {proc.pid}: API {self.rec['api_url']}, store {store}, bus {mask_url(bus)}"
        )

    def _start_relay(self, url: str) -> None:
        parts = urlsplit(url)
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        target = f"{parts.hostname}:{port}"
        names = [h["namespace"] for h in self.rec["hosts"]]
        argv = [sys.executable, "-m", "ipam.lab.relay", "--lab", f"{self.dir}/"]
        argv += ["--target", target, "--port", str(port), *names]
        proc = spawn_detached(argv, self.dir / "relay.log")
        self.rec["relay_pid"] = proc.pid
        record.save(self.dir, self.rec)
        self.progress(f"relay pid {proc.pid}: 127.0.0.1:{port} in every host to {target}")

    # -- VMs ------------------------------------------------------------------------------

    def boot(
        self, network: str, count: int = 1, host: str | None = None, client: str = "udhcpc"
    ) -> list[dict[str, Any]]:
        if not 1 <= count <= 500:
            raise LabError(f"--count must be between 1 and 500, not {count}")
        if client not in CLIENTS:
            raise LabError(f"--client must be one of {', '.join(CLIENTS)}")
        _require_root()
        with record.locked(self.dir):
            self._load_running()
            net = self._network(network)
            _require_tools(client, [net["ipv6"]["mode"]] if net.get("ipv6") else [])
            if host is not None:
                self._host(host)
            with self._api() as api:
                return self._boot_many(api, count, net, host, client)

    def _boot_many(
        self,
        api: httpx.Client,
        count: int,
        net: dict[str, Any] | None,
        host_name: str | None,
        client: str,
    ) -> list[dict[str, Any]]:
        live = [h for h in self.rec["hosts"] if not h.get("killed")]
        if host_name is not None:
            live = [h for h in live if h["name"] == host_name]
            if not live:
                raise LabError(f"host {host_name} is killed: 'ovirt-ipam lab host start' first")
        if not live:
            raise LabError("every host is killed: no host can run a VM")
        servers = _dhcp_servers(api)
        booted = []
        # a stateless VM's one-shot DHCPv6 information-request (about 0.8 s: its random
        # initial delay) runs beside the next VMs' boots
        with ThreadPoolExecutor(max_workers=4) as pool:
            asking: dict[str, Future[str | None]] = {}
            for k in range(count):
                n = net or self.rec["networks"][k % len(self.rec["networks"])]
                nth = k if net else k // len(self.rec["networks"])  # nth VM of its network
                h = live[nth % len(live)]
                kind = client if client != "both" else ("udhcpc", "dhclient")[nth % 2]
                vm = self._boot_vm(api, n, h, kind, servers)
                if vm.get("ipv6_mode") == "stateless":
                    asking[vm["name"]] = pool.submit(_ask_dns6, vm)
                booted.append(vm)
                self.progress(f"[{k + 1}/{count}] {_vm_line(vm)}")
            self._settle_ipv6([v for v in booted if v.get("ipv6_mode")], asking)
        return [_vm_now(v) for v in booted]

    def _settle_ipv6(
        self, vms: list[dict[str, Any]], asking: dict[str, Future[str | None]]
    ) -> None:
        """Dual-stack VMs just booted: record the DNS servers the stateless ones' DHCPv6
        requests (``asking``) got, and wait, up to IPV6_WAIT_S, until each holds exactly
        its port's IPv6 address on eth0 (SLAAC's and dhclient -6's come within about a
        second: the kernel's router solicitation and dhclient's SOLICIT wait up to 1 s)."""
        if not vms:
            return
        started = time.monotonic()
        held: set[str] = set()

        def all_held() -> bool:
            for v in vms:
                if v["name"] not in held and eth0_addresses6(v["namespace"]) == [
                    v["allocated_ip6"]
                ]:
                    held.add(v["name"])
            return len(held) == len(vms)

        with contextlib.suppress(TimeoutError):
            wait_for(all_held, IPV6_WAIT_S, "IPv6 addresses", 0.05)
        stateless = [v for v in vms if v["name"] in asking]
        for vm in stateless:
            vm["dns6"] = asking[vm["name"]].result()
        record.save(self.dir, self.rec)
        lacking = [v["name"] for v in vms if v["name"] not in held]
        got_dns = sum(bool(v.get("dns6")) for v in stateless)
        self.progress(
            f"IPv6: {len(held)}/{len(vms)} VMs hold exactly their port's address after "
            f"{time.monotonic() - started:.1f} s"
            + (f", {got_dns}/{len(stateless)} stateless ones got DNS servers" if stateless else "")
            + (f"; not (yet): {', '.join(lacking)}" if lacking else "")
        )

    def _boot_vm(
        self,
        api: httpx.Client,
        net: dict[str, Any],
        host: dict[str, Any],
        client: str,
        servers: dict[str, str],
    ) -> dict[str, Any]:
        index = self.rec["next_vm"]
        name = f"{self.name}-vm{index}"
        vm_rec: dict[str, Any] = {
            "name": name,
            "namespace": name,
            "network": net["name"],
            "host": host["name"],
            "nic": f"vnet{index}",
            "client": client,
        }
        self.rec["next_vm"] = index + 1
        self.rec["vms"].append(vm_rec)
        record.save(self.dir, self.rec)  # recorded before it is made
        vm = Vm(
            net["vdsm_name"],
            random_mac(),
            name=name,
            bridge_ns=host["namespace"],
            host_if=vm_rec["nic"],
        )
        v6 = net.get("ipv6")
        if v6:  # before the port: set_mac below cycles eth0 again, as ipv6_up needs
            vm.ipv6_up(accept_ra=v6["mode"] != "stateful")
        created = time.monotonic()
        port = _ok(
            api.post(
                "/v2.0/ports",
                json={
                    "port": {
                        "network_id": net["id"],
                        "name": name,
                        "device_owner": "oVirt",
                        "device_id": name,
                    }
                },
            ),
            f"create the port of {name}",
        )["port"]
        booted = time.monotonic()  # the VM starts right after its port is created
        booted_at = time.time()  # the same moment on the clock of the client's event log
        vm.set_mac(port["mac_address"])
        dhcp = VmClient(self.dir / "vms" / name, name, client)
        vm_rec["client_dir"] = str(dhcp.dir)
        vm_rec["client_pid"] = dhcp.start()
        if v6 and v6["mode"] == "stateful":
            vm_rec["client6_pid"] = VmClient6(dhcp.dir, name).start()
        record.save(self.dir, self.rec)
        lease = self._wait_lease(dhcp, vm_rec["client_pid"], booted_at, LEASE_WAIT_S[client])
        server_ip = lease.server if lease else None
        if server_ip and server_ip not in servers:
            servers.update(_dhcp_servers(api))
        vm_rec.update(
            port_id=port["id"],
            mac=port["mac_address"],
            allocated_ip=_fixed_ip(port, 4),
            port_status=port.get("status"),
            port_create_ms=round((booted - created) * 1000, 1),
            leased_ip=lease.ip if lease else None,
            dhcp_server=server_ip,
            dhcp_server_host=servers.get(server_ip or ""),
            time_to_lease_s=round(max(0.0, lease.at - booted_at), 3) if lease else None,
            first_try=bool(lease) and dhcp.discovers() == 1,
        )
        if v6:
            vm_rec.update(ipv6_mode=v6["mode"], allocated_ip6=_fixed_ip(port, 6))
        record.save(self.dir, self.rec)
        return vm_rec

    @staticmethod
    def _wait_lease(dhcp: VmClient, pid: int, since: float, timeout: float) -> Event | None:
        """The client's first lease since ``since``, or None after ``timeout`` s (or when the
        client died). Whether it lives is asked of the pid we started, not of its command
        line: between nsenter and its exec of the client /proc shows an empty one."""

        def exited() -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        def bound() -> Event | bool | None:
            return dhcp.configured(since) or exited()

        try:
            wait_for(bound, timeout, "a lease", interval=0.005)
        except TimeoutError:
            return None
        return dhcp.configured(since)

    def reboot(
        self, names: list[str], timeout: float = 60, parallel: int = 10
    ) -> list[dict[str, Any]]:
        """Reboot VMs: each one's DHCP client is SIGKILLed (no RELEASE), eth0 loses its
        address, and the client starts again as at a reboot: dhclient with its lease file
        (INIT-REBOOT: a broadcast REQUEST for its address), udhcpc asking for its old
        address (``-r``). Time from the restart to the lease, and its server. ``parallel``
        VMs at a time; each is waited for up to ``timeout`` s."""
        if not names:
            raise LabError("name the VMs to reboot")
        if not 0 < timeout <= 3600:
            raise LabError(f"--timeout must be between 0 and 3600 seconds, not {timeout}")
        if not 1 <= parallel <= 500:
            raise LabError(f"--parallel must be between 1 and 500, not {parallel}")
        _require_root()
        with record.locked(self.dir):
            self._load_running()
            vms = [self._vm(n) for n in dict.fromkeys(names)]
            dead = {h["name"] for h in self.rec["hosts"] if h.get("killed")}
            cut_off = [f"{v['name']} (on {v['host']})" for v in vms if v["host"] in dead]
            if cut_off:
                raise LabError(
                    f"cannot reboot VMs on a killed host: {', '.join(cut_off)}; "
                    "'ovirt-ipam lab host start' first"
                )
            with self._api() as api:
                servers = _dhcp_servers(api)
                out = []
                for first in range(0, len(vms), parallel):
                    out += self._reboot_wave(api, vms[first : first + parallel], timeout, servers)
            return out

    def _reboot_wave(
        self,
        api: httpx.Client,
        vms: list[dict[str, Any]],
        timeout: float,
        servers: dict[str, str],
    ) -> list[dict[str, Any]]:
        started: list[tuple[dict[str, Any], VmClient, str | None, float, int]] = []
        for vm in vms:
            client6 = _client6(vm)
            if client6:  # it comes up bare too, and its DHCPv6 client confirms its lease
                client6.kill(vm.get("client6_pid"))
                flush_eth0(vm["namespace"], socket.AF_INET6)
            dhcp = _client(vm)
            held = dhcp.lease()
            old_ip = held.ip if held else vm.get("leased_ip")
            dhcp.kill(vm.get("client_pid"))
            flush_eth0(vm["namespace"])
            offset = dhcp.log_size()
            at = time.time()
            vm["client_pid"] = dhcp.start(request_ip=old_ip if dhcp.kind == "udhcpc" else None)
            if client6:
                vm["client6_pid"] = client6.start()
            started.append((vm, dhcp, old_ip, at, offset))
        record.save(self.dir, self.rec)
        results: dict[str, dict[str, Any]] = {}

        def all_bound() -> bool:
            for vm, dhcp, old_ip, at, offset in started:
                if vm["name"] in results:
                    continue
                lease = dhcp.configured(at)
                if lease is None:
                    continue
                if lease.server not in servers:
                    servers.update(_dhcp_servers(api))
                results[vm["name"]] = res = {
                    "vm": vm["name"],
                    "host": vm["host"],
                    "client": dhcp.kind,
                    "address_before": old_ip,
                    "leased_ip": lease.ip,
                    "event": lease.name,
                    "seconds": round(max(0.0, lease.at - at), 3),
                    "dhcp_server": lease.server,
                    "dhcp_server_host": servers.get(lease.server),
                    "discovers": dhcp.discovers(offset),
                    "address_on_eth0": lease.ip in eth0_addresses(vm["namespace"]),
                }
                self.progress(f"{vm['name']} rebooted: {_reboot_line(res)}")
            return len(results) == len(started)

        with contextlib.suppress(TimeoutError):
            wait_for(all_bound, timeout, "rebooted VMs' leases", interval=0.005)
        out = []
        for vm, dhcp, old_ip, _at, offset in started:
            res = results.get(vm["name"]) or {
                "vm": vm["name"],
                "host": vm["host"],
                "client": dhcp.kind,
                "address_before": old_ip,
                "leased_ip": None,
                "event": None,
                "seconds": None,
                "dhcp_server": None,
                "dhcp_server_host": None,
                "discovers": dhcp.discovers(offset),
                "address_on_eth0": False,
            }
            if res["leased_ip"] is None:
                self.progress(f"{vm['name']} rebooted: NO LEASE after {timeout:g} s")
            out.append(res)
        return out

    # -- hosts ------------------------------------------------------------------------------

    def kill_host(self, name: str, wait: bool = True, watch: float = 0) -> dict[str, Any]:
        """The host dies: its processes are SIGKILLed and its uplinks go down. With
        ``wait``, watch the engine move its networks to other hosts; then report on the
        VMs (on live hosts) whose lease came from the killed host: did they keep their
        address, and which server answered them since. ``watch`` > 0: keep watching
        them, up to ``watch`` s after the kill, until each has renewed or rebound."""
        if not 0 <= watch <= 86400:
            raise LabError(f"--watch must be between 0 and 86400 seconds, not {watch}")
        _require_root()
        with record.locked(self.dir):
            self._load_running()
            host = self._host(name)
            if host.get("killed"):
                raise LabError(f"host {name} is already killed; 'ovirt-ipam lab host start {name}'")
            with self._api() as api:
                serving = serving_hosts(api)  # one request, before the host dies
                servers = _dhcp_servers(api)
                served = [n for n in self.rec["networks"] if name in serving.get(n["id"], [])]
                clients = self._served_by(name, servers)
                dead = {h["name"] for h in self.rec["hosts"] if h.get("killed")} | {name}
                affected = {v["name"]: c for v, c in clients if v["host"] not in dead}
                address = AddressWatch(
                    {v: (self._vm(v)["namespace"], c["ip"]) for v, c in affected.items()},
                    WATCH_INTERVAL,
                )
                lab_host = LabHost.attach(host)
                procs = len(lab_host.processes())
                killed_wall = time.time()
                killed_at = time.monotonic()  # SIGKILL goes out first thing in kill()
                address.start()
                try:
                    lab_host.kill()
                    lab_host.set_uplinks(False)
                    host["killed"] = True
                    record.save(self.dir, self.rec)
                    names = ", ".join(n["name"] for n in served) or "no network"
                    self.progress(
                        f"killed host {name}: {procs} processes (host service, DHCP agent, "
                        f"dnsmasq) SIGKILLed, uplinks down; it served {names}"
                    )
                    out: dict[str, Any] = {
                        "host": name,
                        "served": [n["name"] for n in served],
                        "killed_at": round(killed_wall, 3),
                    }
                    if (wait or watch) and served:
                        out["failover"] = self._wait_served(
                            api, served, {name}, HOST_DOWN_TIME + 30, since=killed_at
                        )
                    cut_off = [v["name"] for v, _ in clients if v["host"] in dead]
                    out["vms_on_killed_hosts"] = cut_off
                    if cut_off:
                        self.progress(
                            f"{len(cut_off)} VMs served by {name} run on a killed host "
                            "(cut off with it): not followed"
                        )
                    out["vms"] = self._follow(
                        api, affected, name, killed_wall, killed_at + watch, address
                    )
                finally:
                    address.stop()
                return out

    def _served_by(
        self, host: str, servers: dict[str, str]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The VMs whose current lease (their client's last event) came from ``host``'s
        dnsmasq, each with what it held: its address, server, lease start and length."""
        out = []
        for vm in self.rec["vms"]:
            if "port_id" not in vm or "client_dir" not in vm:
                continue
            lease = _client(vm).lease()
            if lease is None or servers.get(lease.server) != host:
                continue
            length = lease.lease or self.rec.get("lease_time", LEASE_TIME)
            out.append(
                (
                    vm,
                    {
                        "ip": lease.ip,
                        "server": lease.server,
                        "since": lease.at,
                        "t1": lease.at + length / 2,
                        "t2": lease.at + (rebind_time(length) or length * 7 / 8),
                        "expires": lease.at + length,
                    },
                )
            )
        return out

    def _follow(
        self,
        api: httpx.Client,
        held: dict[str, dict[str, Any]],
        killed: str,
        killed_wall: float,
        deadline: float,
        address: AddressWatch,
    ) -> list[dict[str, Any]]:
        """Each VM of ``held`` after the kill: its address kept, and the server that
        answered its renew/rebind since. Until ``deadline`` (monotonic) passes, look again
        every WATCH_INTERVAL s until each was answered, showing what changes."""
        servers = _dhcp_servers(api)
        shown: dict[str, tuple[bool, bool]] = {}
        last_summary = time.monotonic()

        def look() -> list[dict[str, Any]]:
            vms = [self._vm(name) for name in held]
            answering = {
                e.server
                for vm in vms
                for e in _client(vm).events(killed_wall)
                if e.name in CONFIGURED and e.server
            }
            if answering - servers.keys():  # a server it has not seen yet
                servers.update(_dhcp_servers(api))
            return [
                _continuity(vm, held[vm["name"]], killed, killed_wall, servers, address)
                for vm in vms
            ]

        states = look()
        if held:
            self.progress(
                f"{len(held)} VMs on live hosts held leases from {killed}: "
                f"{sum(s['kept_address'] for s in states)} keep their address"
            )
        while True:
            for st in states:
                key = (st["kept_address"], st["answered_by"] is not None)
                if shown.get(st["vm"], (True, False)) != key:
                    self.progress(f"{st['vm']}: {_continuity_line(st)}")
                shown[st["vm"]] = key
            done = all(s["answered_by"] for s in states)
            if done or time.monotonic() >= deadline:
                break
            if time.monotonic() - last_summary >= 10:
                last_summary = time.monotonic()
                waiting = [s for s in states if not s["answered_by"]]
                t2s = [s["t2_at"] for s in waiting if s["t2_at"] > time.time()]
                self.progress(
                    f"watching: {len(states) - len(waiting)}/{len(states)} answered by a live "
                    f"server, {sum(not s['kept_address'] for s in states)} lost their address; "
                    + (f"next T2 at {clock(min(t2s))}" if t2s else "every T2 has passed")
                )
            time.sleep(min(WATCH_INTERVAL, max(0.0, deadline - time.monotonic())))
            states = look()
        return states

    def start_host(self, name: str) -> dict[str, Any]:
        _require_root()
        with record.locked(self.dir):
            self._load_running()
            host = self._host(name)
            lab_host = LabHost.attach(host)
            if lab_host.service_alive():
                raise LabError(f"host {name} is running (host service pid {host['service_pid']})")
            lab_host.set_uplinks(True)
            lab_host.start()
            host.update(service_pid=lab_host.service_pid, killed=False)
            record.save(self.dir, self.rec)
            self.progress(f"host {name}: uplinks up, host service pid {lab_host.service_pid}")
            return {"host": name, "service_pid": lab_host.service_pid}

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the lab is, as its record and the engine see it (no lock: it only reads)."""
        rec = record.load(self.dir)
        if rec is None:
            raise LabError(f"no lab {self.name} in {self.dir.parent}: 'ovirt-ipam lab up' first")
        self.rec = rec
        return self._status()

    def _status(self) -> dict[str, Any]:
        rec = self.rec
        engine_up = self._engine_alive()
        serving: dict[str, list[str]] = {}
        if engine_up:
            with contextlib.suppress(httpx.HTTPError), self._api() as api:
                serving = serving_hosts(api)
        hosts = []
        for h in rec["hosts"]:
            if h.get("pending"):
                continue
            lab_host = LabHost.attach(h)
            hosts.append(
                {
                    "name": h["name"],
                    "namespace": h["namespace"],
                    "bridges": h["bridges"],
                    "host_service": "running" if lab_host.service_alive() else "down",
                    "killed": h.get("killed", False),
                    "serves": [
                        n["name"] for n in rec["networks"] if h["name"] in serving.get(n["id"], [])
                    ],
                    "dhcp_namespace_prefix": h["dhcp_namespace_prefix"],
                    "log": f"{h['state']}/host-service.log",
                }
            )
        return {
            "name": rec["name"],
            "directory": rec["directory"],
            "api_url": rec["api_url"],
            "engine": {
                "pid": rec["engine_pid"],
                "running": engine_up,
                "log": f"{rec['directory']}/engine.log",
            },
            "store": mask_url(rec["database"]) if rec["database"] else "sqlite (lab directory)",
            "transport_url": mask_url(rec["transport_url"]),
            "hosts": hosts,
            "networks": [
                {
                    "name": n["name"],
                    "id": n["id"],
                    "vdsm_name": n["vdsm_name"],
                    "cidr": n["cidr"],
                    "ha_count": n["ha_count"],
                    "ipv6": n.get("ipv6"),
                    "serving_hosts": serving.get(n["id"], []),
                }
                for n in rec["networks"]
                if "id" in n
            ],
            "lease_time": rec.get("lease_time", LEASE_TIME),
            "vms": [_vm_now(v) for v in rec["vms"] if "port_id" in v],
        }

    # -- down ------------------------------------------------------------------------------

    def down(self) -> dict[str, Any]:
        _require_root()
        with record.locked(self.dir):
            try:
                self.rec = record.load(self.dir) or {}
            except LabError:
                self.rec = {}
            return self._down()

    def _down(self) -> dict[str, Any]:
        """End every process of the lab, remove every namespace and the directory. Each
        step goes on when a part is already gone: safe to run twice, or after a crash."""
        if self.rec.get("database") and self._engine_alive():
            self._delete_from_store()
        ended = 0
        clients = []
        for vm in self.rec.get("vms", []):
            if "client_dir" in vm and _client(vm).running(vm.get("client_pid")):
                with contextlib.suppress(psutil.Error):
                    clients.append(psutil.Process(vm["client_pid"]))
            client6 = _client6(vm)
            if client6 and client6.running(vm.get("client6_pid")):
                with contextlib.suppress(psutil.Error):
                    clients.append(psutil.Process(vm["client6_pid"]))
        ended += processes.end(clients, grace=2)
        for h in self.rec.get("hosts", []):
            if not h.get("pending"):
                lab_host = LabHost.attach(h)
                ended += len(lab_host.processes())
                lab_host.kill()
        ended += processes.end(
            [p for p in processes.marked(f"{self.dir}/") if not processes.ended(p)]
        )
        if self.rec.get("transport_url", "").startswith("amqp"):
            self._delete_queues()
        removed = 0
        for name in sorted(netns.listnetns()):
            if name.startswith(f"{self.name}-"):
                with contextlib.suppress(OSError):
                    netns.remove(name)
                    removed += 1
        existed = self.dir.exists()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.progress(
            f"lab {self.name} is down: {ended} processes ended, {removed} namespaces removed"
            + (f", {self.dir} removed" if existed else "")
        )
        self.rec = {}
        return {"name": self.name, "processes_ended": ended, "namespaces_removed": removed}

    def _delete_from_store(self) -> None:
        """An external store outlives the lab: take the lab's ports and networks out."""
        with contextlib.suppress(httpx.HTTPError), self._api() as api:
            for vm in self.rec.get("vms", []):
                if vm.get("port_id"):
                    api.delete(f"/v2.0/ports/{vm['port_id']}")
            for net in self.rec.get("networks", []):
                if net.get("id"):
                    api.delete(f"/v2.0/networks/{net['id']}")

    def _delete_queues(self) -> None:
        """An external broker outlives the lab: delete the lab hosts' queues."""
        from ipam.bus.messaging import Bus

        bus = Bus(self.rec["transport_url"], name=f"lab-{self.name}-down")
        try:
            for h in self.rec.get("hosts", []):
                for queue in (
                    contracts.host_queue(h["name"]),
                    contracts.agent_queue(h["name"]),
                    contracts.reply_queue(h["name"]),
                ):
                    with contextlib.suppress(Exception):
                        bus.delete_queue(queue)
        finally:
            bus.close()

    # -- helpers ---------------------------------------------------------------------------

    def _leftovers(self) -> bool:
        return self.dir.exists() or any(n.startswith(f"{self.name}-") for n in netns.listnetns())

    def _load_running(self) -> None:
        rec = record.load(self.dir)
        if rec is None:
            raise LabError(f"no lab {self.name} in {self.dir.parent}: 'ovirt-ipam lab up' first")
        self.rec = rec
        if not self._engine_alive():
            raise LabError(
                f"the engine of lab {self.name} is not running; 'ovirt-ipam lab down' "
                "then 'ovirt-ipam lab up'"
            )

    def _engine_alive(self) -> bool:
        return processes.is_ours(self.rec.get("engine_pid"), f"{self.dir}/engine.conf")

    def _api(self) -> httpx.Client:
        return httpx.Client(base_url=self.rec["api_url"], timeout=60)

    def _network(self, name: str) -> dict[str, Any]:
        for net in self.rec["networks"]:
            if name in (net["name"], net.get("id")):
                return net
        known = ", ".join(n["name"] for n in self.rec["networks"])
        raise LabError(f"lab {self.name} has no network {name!r} (it has {known})")

    def _host(self, name: str) -> dict[str, Any]:
        for host in self.rec["hosts"]:
            if host["name"] == name:
                return host
        known = ", ".join(h["name"] for h in self.rec["hosts"])
        raise LabError(f"lab {self.name} has no host {name!r} (it has {known})")

    def _vm(self, name: str) -> dict[str, Any]:
        for vm in self.rec["vms"]:
            if name == vm["name"] and "client_dir" in vm:
                return vm
        raise LabError(f"lab {self.name} has no VM {name!r} ('ovirt-ipam lab status' lists them)")

    def _wait_served(
        self,
        api: httpx.Client,
        nets: list[dict[str, Any]],
        gone: set[str],
        timeout: float,
        since: float | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until each network is served by as many live hosts as it can be (its HA
        count, at most the hosts left), none of them in ``gone``; show each change."""
        start = since or time.monotonic()
        live = sum(1 for h in self.rec["hosts"] if not h.get("killed"))
        want = {n["id"]: min(n["ha_count"], live) for n in nets}
        done: dict[str, dict[str, Any]] = {}
        shown: dict[str, list[str]] = {}

        def check() -> bool:
            serving = serving_hosts(api)
            for n in nets:
                hosts = [h for h in serving.get(n["id"], []) if h not in gone]
                if shown.get(n["id"]) != hosts:
                    shown[n["id"]] = hosts
                    self.progress(
                        f"DHCP for {n['name']}: {len(hosts)}/{want[n['id']]} servers"
                        + (f" ({', '.join(hosts)})" if hosts else "")
                    )
                if n["id"] not in done and len(hosts) >= want[n["id"]]:
                    done[n["id"]] = {
                        "network": n["name"],
                        "served_by": hosts,
                        "seconds": round(time.monotonic() - start, 2),
                    }
            return len(done) == len(nets)

        try:
            wait_for(check, timeout, "DHCP servers", interval=0.1)
        except TimeoutError:
            missing = ", ".join(n["name"] for n in nets if n["id"] not in done)
            raise LabError(
                f"after {timeout:.0f} s {missing} still lack DHCP servers; see the logs "
                f"in {self.dir} (engine.log, hosts/*/host-service.log, hosts/*/dhcp-agent.log)"
            ) from None
        return [done[n["id"]] for n in nets]


# -- module helpers ------------------------------------------------------------------------


def _vm_line(vm: dict[str, Any]) -> str:
    lease = (
        f"leased {vm['leased_ip']} in {vm['time_to_lease_s'] * 1000:.0f} ms "
        f"from {vm['dhcp_server_host'] or vm['dhcp_server']}"
        + ("" if vm["first_try"] else " (not on the first DISCOVER)")
        if vm["leased_ip"]
        else "NO LEASE"
    )
    ipv6 = f" {vm['allocated_ip6']}" if vm.get("ipv6_mode") else ""
    client6 = f", IPv6 {vm['ipv6_mode']}" if vm.get("ipv6_mode") else ""
    return (
        f"{vm['name']} on {vm['host']}, {vm['network']}: port {vm['allocated_ip']}{ipv6} "
        f"{vm['mac']} {vm['port_status']}, {vm['client']} {lease}{client6}"
    )


def _client(vm: dict[str, Any]) -> VmClient:
    return VmClient(Path(vm["client_dir"]), vm["namespace"], vm["client"])


def _client6(vm: dict[str, Any]) -> VmClient6 | None:
    """The VM's DHCPv6 client, if it runs one (on a stateful IPv6 subnet)."""
    if vm.get("ipv6_mode") != "stateful" or "client_dir" not in vm:
        return None
    return VmClient6(Path(vm["client_dir"]), vm["namespace"])


def _ask_dns6(vm: dict[str, Any]) -> str | None:
    """A stateless VM's one-shot dhclient -6 -S: the DNS servers DHCPv6 gave it (None:
    no answer, or the client failed)."""
    try:
        got = Vm.attach(vm["namespace"], vm["nic"], vm["mac"], None).dhclient6(
            Path(vm["client_dir"]), stateless=True, timeout=IPV6_WAIT_S / 2
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (got.get("dns") or None) if got else None


def _ipv6_subnet(lab: str, i: int, mode: str) -> dict[str, Any]:
    """Network i's IPv6 /64: a ULA prefix that tells the lab (a hash of its name) and
    the network (100 + i, as in its IPv4 10.<100 + i>.0.0/24), and its DNS server."""
    tag = hashlib.sha256(lab.encode()).hexdigest()[:4]
    cidr = ipaddress.IPv6Network(f"fd00:{tag}:{100 + i}::/64")
    return {
        "cidr": str(cidr),
        "mode": IPV6_CYCLE[(i - 1) % len(IPV6_CYCLE)] if mode == "mixed" else mode,
        # far above what the allocator hands out from the bottom of the prefix
        "dns": str(cidr.network_address + 0xFFFF0053),
    }


def _fixed_ip(port: dict[str, Any], version: int) -> str | None:
    """The port's fixed IP of this IP version (a dual-stack port has one of each)."""
    return next(
        (
            f["ip_address"]
            for f in port["fixed_ips"]
            if ipaddress.ip_address(f["ip_address"]).version == version
        ),
        None,
    )


def clock(at: float) -> str:
    """A wall-clock time as the lab's output shows it (HH:MM:SS, local)."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def _vm_now(vm: dict[str, Any]) -> dict[str, Any]:
    """A VM's record, and what its running client holds now."""
    out = dict(vm)
    if "client_dir" in vm:
        dhcp = _client(vm)
        lease = dhcp.lease()
        out["client_running"] = dhcp.running(vm.get("client_pid"))
        out["eth0"] = eth0_addresses(vm["namespace"])
        if vm.get("ipv6_mode"):
            out["eth0_ipv6"] = eth0_addresses6(vm["namespace"])
        client6 = _client6(vm)
        if client6:
            lease6 = client6.lease()
            out["client6_running"] = client6.running(vm.get("client6_pid"))
            out["lease6_now"] = (
                {"ip": lease6.ip, "server": lease6.server, "event": lease6.name, "at": lease6.at}
                if lease6
                else None
            )
        out["lease_now"] = (
            {"ip": lease.ip, "server": lease.server, "event": lease.name, "at": lease.at}
            if lease
            else None
        )
    return out


def _continuity(
    vm: dict[str, Any],
    before: dict[str, Any],
    killed: str,
    killed_wall: float,
    servers: dict[str, str],
    address: AddressWatch,
) -> dict[str, Any]:
    """A VM whose lease came from the killed host, now: the address it held still on its
    eth0 (and never missing while watched), no deconfig/expire/nak since the kill, and
    which live server answered its renew/rebind (if it did yet)."""
    events = _client(vm).events(killed_wall)
    lost = [e for e in events if e.name in LOST]
    answer = next(
        (e for e in events if e.name in CONFIGURED and e.ip and servers.get(e.server) != killed),
        None,
    )
    on_eth0 = before["ip"] in eth0_addresses(vm["namespace"])
    # the longer of what the looks at eth0 saw and what the client's events say
    without = max(
        address.longest_gap(vm["name"]), longest_loss(events, time.time(), before["expires"])
    )
    kept = (
        on_eth0
        and not lost
        and not without
        and not address.lost(vm["name"])
        and (answer is None or answer.ip == before["ip"])
    )
    return {
        "vm": vm["name"],
        "host": vm["host"],
        "network": vm["network"],
        "client": vm["client"],
        "ip": before["ip"],
        "server_before": before["server"],
        "server_before_host": killed,
        "address_on_eth0": on_eth0,
        "kept_address": kept,
        "lost_events": [
            {"event": e.name, "after_kill_s": round(e.at - killed_wall, 1)} for e in lost
        ],
        "seconds_without_address": round(without, 3),
        "answered_by": answer.server if answer else None,
        "answered_by_host": servers.get(answer.server, "?") if answer else None,
        "answer_event": answer.name if answer else None,
        "answered_ip": answer.ip if answer else None,
        "answered_after_kill_s": round(answer.at - killed_wall, 1) if answer else None,
        "t1_at": round(before["t1"], 3),
        "t2_at": round(before["t2"], 3),
        "expires_at": round(before["expires"], 3),
    }


def _continuity_line(st: dict[str, Any]) -> str:
    if st["kept_address"]:
        head = f"{st['ip']} kept"
    else:
        why = ", ".join(f"{e['event']} at +{e['after_kill_s']:.1f} s" for e in st["lost_events"])
        head = f"LOST {st['ip']}" + (f" ({why})" if why else "")
        if st["seconds_without_address"]:
            head += f", {st['seconds_without_address']:.3f} s without it"
    if st["answered_by"]:
        return (
            f"{head}; {st['answer_event']} answered by {st['answered_by_host']} "
            f"({st['answered_by']}) {st['answered_after_kill_s']:.1f} s after the kill"
        )
    return f"{head}; not yet renewed (T2 at {clock(st['t2_at'])})"


def _reboot_line(res: dict[str, Any]) -> str:
    return (
        f"{res['client']} {res['event']} {res['leased_ip']} in {res['seconds'] * 1000:.0f} ms "
        f"from {res['dhcp_server_host'] or '?'} ({res['dhcp_server']}), "
        f"{res['discovers']} DISCOVER{'' if res['discovers'] == 1 else 's'}"
    )


def _ok(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code >= 300:
        raise LabError(f"cannot {what}: HTTP {resp.status_code} {resp.text}")
    return resp.json()


def serving_hosts(api: httpx.Client) -> dict[str, list[str]]:
    """network id -> live hosts whose dnsmasq for it runs, from the engine's agents view."""
    out: dict[str, list[str]] = {}
    for agent in _ok(api.get("/v2.0/agents"), "list the DHCP agents")["agents"]:
        if not agent["alive"]:
            continue
        for net_id, state in agent["configurations"]["dnsmasq"].items():
            if state == "running":
                out.setdefault(net_id, []).append(agent["host"])
    return {k: sorted(v) for k, v in out.items()}


def _dhcp_servers(api: httpx.Client) -> dict[str, str]:
    """DHCP server IP -> its host, from the DHCP ports the engine made."""
    ports = _ok(
        api.get("/v2.0/ports", params={"device_owner": contracts.DHCP_OWNER}), "list DHCP ports"
    )["ports"]
    return {f["ip_address"]: p["binding:host_id"] for p in ports for f in p["fixed_ips"]}


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab makes network namespaces and bridges: run it as root")


def _require_tools(client: str, ipv6: list[str]) -> None:
    """What the VMs' clients need; ``ipv6``: the IPv6 modes their networks use."""
    needed = {"dnsmasq": "dnsmasq-base", "nsenter": "util-linux"}
    if client in ("udhcpc", "both"):
        needed["busybox"] = "busybox"
    if client in ("dhclient", "both") or set(ipv6) - {"slaac"}:
        needed["dhclient"] = "isc-dhcp-client"
    if ipv6:
        needed["sysctl"] = "procps"
    missing = [pkg for tool, pkg in needed.items() if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: apt-get install {' '.join(missing)} "
            "(tools/lab.sh installs everything)"
        )


def _require_free_port(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise LabError(
                f"127.0.0.1:{port} is in use (an engine from tools/engine.sh?); "
                "give the lab another with --port"
            ) from None
