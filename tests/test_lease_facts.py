"""Lease facts (issue 17), agent side: what a real dnsmasq logs of real clients
becomes facts per MAC (bound, released, declined), rebuilt from the lease file when
dnsmasq starts again; lines that do not parse are counted, never trusted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from dhcp_driver.lease_log import LeaseTracker
from dhcp_driver.netns import iproute_in
from ipam.bus.contracts import LEASE_TIME_INFINITE
from ipam.lab.netparts import Vm, in_netns
from ipam.polling import wait_for
from tests.test_served_network import World

pytestmark = pytest.mark.root


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def facts_of(world: World, mac: str, state: str) -> dict:
    """Wait until the agent's batches hold a fact of this MAC in this state."""
    seen: dict = {}

    def found() -> bool:
        batch = world.served.lease_facts()
        for fact in batch[0] if batch else []:
            seen[fact.mac_address] = fact
        return mac in seen and seen[mac].state == state

    wait_for(found, 5, f"a {state} fact for {mac}", 0.02)
    return seen[mac].model_dump()


def test_bound_released_and_rebuilt_after_a_respawn(world: World) -> None:
    port = world.port("02:00:00:00:17:01", "10.77.0.21")
    world.served.apply_state(world.state([port]))
    world.served.lease_facts()  # the start's rebuild: nothing yet
    vm = world.vm(port.mac_address)
    before = time.time()
    assert vm.udhcpc(world.tmp)["ip"] == "10.77.0.21"  # type: ignore[index]
    bound = facts_of(world, port.mac_address, "bound")
    assert bound["ip_address"] == "10.77.0.21"
    assert before <= bound["seen_at"] <= time.time()
    assert bound["expires_at"] == pytest.approx(bound["seen_at"] + 120, abs=0.01)
    # dnsmasq dies and is respawned: the facts are rebuilt from its lease file.
    os.kill(world.served.process.pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: not world.served.process.alive(), 5, "dnsmasq to die", 0.02)
    world.served.process.next_start = 0
    assert world.served.check() is not None
    facts, unparsed, rebuilt = world.served.lease_facts()  # type: ignore[misc]
    assert rebuilt and unparsed == 0
    assert [(f.mac_address, f.ip_address, f.state) for f in facts] == [
        (port.mac_address, "10.77.0.21", "bound")
    ]
    assert facts[0].expires_at == pytest.approx(bound["expires_at"], abs=1.5)
    # ISC dhclient -r releases the lease (by unicast, from the address it holds).
    dhclient_lease_and_release(vm, world.tmp)
    released = facts_of(world, port.mac_address, "released")
    assert released["ip_address"] == "10.77.0.21" and released["expires_at"] is None


def dhclient_lease_and_release(vm: Vm, tmp: Path) -> None:
    script = tmp / "dhclient-configure.sh"
    script.write_text(
        '#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBIND|REBOOT)\n'
        "busybox ifconfig $interface $new_ip_address netmask $new_subnet_mask up;;\nesac\n"
    )
    script.chmod(0o755)
    pidfile = tmp / "dhclient-r.pid"
    base = ["dhclient", "-lf", str(tmp / "dhclient-r.leases"), "-pf", str(pidfile)]
    base += ["-sf", str(script)]
    try:
        subprocess.run(in_netns(vm.ns, [*base, "-1", "eth0"]), check=True, timeout=30)
        subprocess.run(in_netns(vm.ns, [*base, "-r", "eth0"]), check=True, timeout=30)
    finally:
        with contextlib.suppress(OSError, ValueError, psutil.Error):  # -r ends it already
            daemon = psutil.Process(int(pidfile.read_text()))
            if daemon.name() == "dhclient":
                daemon.terminate()


def test_a_client_that_finds_its_address_in_use_declines_it(world: World) -> None:
    """busybox udhcpc -a checks the offered address by ARP; another namespace holds
    it, so the client sends a real DHCPDECLINE."""
    port = world.port("02:00:00:00:17:02", "10.77.0.22")
    world.served.apply_state(world.state([port]))
    squatter = world.vm("02:00:00:00:17:99")
    with iproute_in(squatter.ns) as ip:
        ip.addr("add", index=ip.link_lookup(ifname="eth0")[0], address="10.77.0.22", prefixlen=24)
    vm = world.vm(port.mac_address)
    # -A 1: try again a second after the decline (not 20), and get nothing: dnsmasq
    # stops offering a declined static address for ten minutes.
    assert vm.udhcpc(world.tmp, tries=1, timeout=1, args=["-a", "-A", "1"]) is None
    declined = facts_of(world, port.mac_address, "declined")
    assert declined["ip_address"] == "10.77.0.22"


def test_lines_are_parsed_strictly() -> None:
    tracker = LeaseTracker(LEASE_TIME_INFINITE)
    pid = "dnsmasq-dhcp[42]: "
    for line in (
        f"{pid}DHCPDISCOVER(ovd1) 02:00:00:00:00:01 ",
        f"{pid}DHCPOFFER(ovd1) 10.0.0.5 02:00:00:00:00:01 ",
        f"{pid}1234 DHCPACK(ovd1) 10.0.0.5 02:00:00:00:00:01 vm1",
        f"{pid}DHCPNAK(ovd1) 10.0.0.6 02:00:00:00:00:02 wrong address",
        f"{pid}DHCPNAK(ovd1) 10.0.0.7 02:00:00:00:00:03 $(reboot)",
        f"{pid}DHCPREPLY(ovd1) fd00::5 00:01:00:01:2a:2b:2c:2d:02:00:00:00:00:01",
        f"{pid}RTR-ADVERT(ovd1) fd00::",
        f"{pid}read /x/hosts.d/y",
        "dnsmasq[42]: query[A] example.org from 10.0.0.5",
        f"{pid}DHCPACK(ovd1) 10.0.0.5 02:00:zz:00:00:01",  # not a MAC: counted
        f"{pid}DHCPFOO(ovd1) garbage",  # a packet log of no known shape: counted
    ):
        tracker.feed(line, now=1000.0)
    batch = tracker.take()
    assert batch is not None
    facts, unparsed, rebuilt = batch
    by_mac = {f.mac_address: f for f in facts}
    assert by_mac["02:00:00:00:00:01"].state == "bound"
    assert by_mac["02:00:00:00:00:01"].expires_at is None  # infinite lease time
    assert (by_mac["02:00:00:00:00:02"].state, by_mac["02:00:00:00:00:02"].reason) == (
        "nak",
        "wrong address",
    )
    assert by_mac["02:00:00:00:00:03"].reason is None  # text that is not dnsmasq's
    assert (unparsed, rebuilt) == (2, False)
    assert tracker.take() is None
