"""DHCP clients that keep running in a test's VM: the lab's own (ipam.lab.dhcpclient:
they configure eth0 from their leases, renew at T1, rebind at T2 and log every
event), driven as the tests need them: start, wait for a lease, crash, reboot."""

from __future__ import annotations

import time
from pathlib import Path

from ipam.lab.dhcpclient import CONFIGURED, Event, VmClient, eth0_addresses, flush_eth0
from ipam.lab.netparts import Vm, rand
from ipam.polling import wait_for

RENEWED = frozenset({"renew", "rebind"})  # udhcpc calls a rebind "renew" too


class RunningClient:
    """busybox udhcpc or ISC dhclient running in a VM (one per VM)."""

    def __init__(self, vm: Vm, kind: str, workdir: Path) -> None:
        self.vm, self.kind = vm, kind
        self.client = VmClient(workdir / f"{kind}-{rand()}", vm.ns, kind)
        self.client.dir.mkdir(parents=True, mode=0o700)
        self.output, self.leases = self.client.log_path, self.client.leases
        self.pid: int | None = None

    def start(self, request_ip: str | None = None) -> float:
        """Start the client (dhclient reboots from its lease file, if any; udhcpc asks
        for ``request_ip``); returns when, as unix time."""
        started = time.time()
        self.pid = self.client.start(request_ip)
        return started

    def events(self, since: float = 0.0) -> list[Event]:
        return self.client.events(since)

    def wait_bound(self, since: float, timeout: float) -> Event:
        """The first event after ``since`` that gave eth0 a lease."""
        return wait_for(
            lambda: self.client.configured(since),
            timeout,
            f"{self.kind} in {self.vm.ns} to be bound",
            interval=0.01,
        )

    def stop(self) -> None:
        """The client dies as in a crash or a power-off: no release, no deconfig."""
        self.client.kill(self.pid)

    def reboot(self) -> float:
        """The VM reboots: its client dies, eth0 comes up bare, the client starts again
        (dhclient: INIT-REBOOT from its lease file; udhcpc: ``-r`` its old address)."""
        old = eth0_addresses(self.vm.ns)
        self.stop()
        flush_eth0(self.vm.ns)
        return self.start(request_ip=old[0] if old and self.kind == "udhcpc" else None)


__all__ = ["CONFIGURED", "RENEWED", "Event", "RunningClient"]
