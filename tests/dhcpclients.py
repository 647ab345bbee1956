"""DHCP clients that keep running in a VM, as a VM's own would: they configure
eth0 from their leases, renew at T1 and rebind at T2, and log every event; and a
watcher that samples each VM's eth0 address, so a test can prove that no VM ever
lost its address (DESIGN.md, Invariants: "A VM never loses its address ...")."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import NetNS

from ipam.lab.netparts import Vm, in_netns, rand
from ipam.polling import wait_for

# The client scripts configure eth0 and append one line per event (see Event).
_UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew) busybox ifconfig eth0 "$ip" netmask "$subnet" up ;;
  deconfig) busybox ifconfig eth0 0.0.0.0 ;;
esac
echo "$(date +%s.%N) $1 ${{ip:--}} ${{serverid:--}} ${{router:--}} ${{mtu:--}} ${{lease:--}}" \
  >> {events}
"""
_DHCLIENT_SCRIPT = """#!/bin/sh
case "$reason" in
  PREINIT) busybox ifconfig eth0 up ;;
  BOUND|RENEW|REBIND|REBOOT)
    busybox ifconfig eth0 "$new_ip_address" netmask "$new_subnet_mask" up ;;
  EXPIRE|FAIL|RELEASE|STOP) busybox ifconfig eth0 0.0.0.0 ;;
esac
echo "$(date +%s.%N) $reason ${{new_ip_address:--}} ${{new_dhcp_server_identifier:--}} \
${{new_routers:--}} ${{new_interface_mtu:--}} ${{new_dhcp_lease_time:--}}" >> {events}
"""
_DHCLIENT_CONF = "request subnet-mask, broadcast-address, routers, interface-mtu;\n"
BOUND = {"bound", "renew", "BOUND", "RENEW", "REBIND", "REBOOT"}
LOST = {"deconfig", "EXPIRE", "FAIL", "RELEASE", "STOP"}


@dataclass(frozen=True)
class Event:
    at: float
    name: str
    ip: str
    server: str
    router: str
    mtu: str
    lease: str  # seconds, as the server gave them


class RunningClient:
    """busybox udhcpc or ISC dhclient running in a VM (one per VM)."""

    def __init__(self, vm: Vm, kind: str, workdir: Path) -> None:
        assert kind in ("udhcpc", "dhclient")
        self.vm, self.kind = vm, kind
        tag = f"{kind}-{rand()}"
        self.events_file = workdir / f"{tag}.events"
        self.output = workdir / f"{tag}.out"
        self.script = workdir / f"{tag}.sh"
        self.leases = workdir / f"{tag}.leases"
        self.conf = workdir / f"{tag}.conf"
        template = _UDHCPC_SCRIPT if kind == "udhcpc" else _DHCLIENT_SCRIPT
        self.script.write_text(template.format(events=self.events_file))
        self.script.chmod(0o755)
        self.conf.write_text(_DHCLIENT_CONF)
        self.proc: subprocess.Popen | None = None

    def start(self, request_ip: str | None = None) -> float:
        """Start the client; dhclient reboots (INIT-REBOOT) from its lease file, if any;
        udhcpc asks for ``request_ip`` (``-r``). Returns the start time."""
        if self.kind == "udhcpc":
            argv = ["busybox", "udhcpc", "-f", "-i", "eth0", "-s", str(self.script)]
            argv += ["-r", request_ip] if request_ip else []
        else:
            argv = ["dhclient", "-d", "-cf", str(self.conf), "-sf", str(self.script)]
            argv += ["-lf", str(self.leases), "-pf", str(self.leases.with_suffix(".pid")), "eth0"]
        started = time.time()
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                in_netns(self.vm.ns, argv), stdout=out, stderr=subprocess.STDOUT
            )
        return started

    def events(self, since: float = 0.0) -> list[Event]:
        try:
            lines = self.events_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            at, name, *fields = line.split(" ")
            if float(at) >= since:
                out.append(Event(float(at), name, *fields))
        return out

    def wait_bound(self, since: float, timeout: float) -> Event:
        """The first lease event after ``since``."""

        def bound() -> Event | None:
            return next((e for e in self.events(since) if e.name in BOUND), None)

        return wait_for(bound, timeout, f"{self.kind} in {self.vm.ns} to be bound", interval=0.01)

    def stop(self) -> None:
        """The client dies as in a crash or a power-off: no release, no deconfig."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def reboot(self) -> float:
        """The VM reboots: its client dies, eth0 loses its address, the client starts
        again (dhclient: INIT-REBOOT from its lease file; udhcpc: ``-r`` its old IP)."""
        old = self.vm_address()
        self.stop()
        with NetNS(self.vm.ns) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            ns.flush_addr(index=idx)
        return self.start(request_ip=old if self.kind == "udhcpc" else None)

    def vm_address(self) -> str | None:
        return vm_address(self.vm.ns)


def vm_address(namespace: str) -> str | None:
    """The IPv4 address on the VM's eth0, or None."""
    with NetNS(namespace) as ns:
        for addr in ns.get_addr(family=2, label="eth0"):
            return str(addr.get_attr("IFA_ADDRESS"))
    return None


class AddressWatch(threading.Thread):
    """Samples every VM's eth0 address every ``interval`` s, recording for each the
    longest time it lacked the address it had when watching began."""

    def __init__(self, namespaces: list[str], interval: float = 0.1) -> None:
        super().__init__(name="address-watch", daemon=True)
        self.interval = interval
        self.expected = {ns: vm_address(ns) for ns in namespaces}
        self.gaps: dict[str, float] = dict.fromkeys(namespaces, 0.0)
        self.samples = 0
        self._done = threading.Event()
        self._sockets = {ns: NetNS(ns) for ns in namespaces}

    def _address(self, ns: NetNS) -> str | None:
        for addr in ns.get_addr(family=2, label="eth0"):
            return str(addr.get_attr("IFA_ADDRESS"))
        return None

    def expect(self, namespace: str, ip: str) -> None:
        """The VM's address changes on purpose (its port's IP changed)."""
        self.expected[namespace] = str(ipaddress.IPv4Address(ip))

    def run(self) -> None:
        missing_since: dict[str, float] = {}
        while not self._done.wait(self.interval):
            now = time.monotonic()
            for name, sock in self._sockets.items():
                if self._address(sock) == self.expected[name]:
                    missing_since.pop(name, None)
                    continue
                start = missing_since.setdefault(name, now)
                self.gaps[name] = max(self.gaps[name], now - start + self.interval)
            self.samples += 1

    def stop(self) -> None:
        self._done.set()
        self.join(5)
        for sock in self._sockets.values():
            with contextlib.suppress(Exception):
                sock.close()
