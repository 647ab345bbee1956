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
from ipam.bus.contracts import LEASE_TIME_INFINITE, is_client_hostname
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
    # udhcpc sends its MAC as client id (01 = Ethernet) and, asked to, a hostname.
    got = vm.udhcpc(world.tmp, args=["-x", "hostname:vm-seventeen"])
    assert got is not None and got["ip"] == "10.77.0.21"
    bound = facts_of(world, port.mac_address, "bound")
    assert bound["ip_address"] == "10.77.0.21"
    assert bound["client_id"] == "01:" + port.mac_address
    assert bound["client_hostname"] == "vm-seventeen"
    # ... kept as what the client said, never as its name (dhcp-ignore-names).
    assert "vm-seventeen" not in world.served.paths.leases.read_text()
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
    # The client id is in the lease file; the hostname sent is not (the engine keeps it).
    assert (facts[0].client_id, facts[0].client_hostname) == (bound["client_id"], None)
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


def test_what_a_client_says_of_itself_is_checked_and_joined_by_xid(tmp_path: Path) -> None:
    """log-dhcp logs the name a client sent before the exchange's packet lines, with
    the same XID; the client id comes from the lease file, once dnsmasq rewrote it."""
    leases = tmp_path / "leases"
    tracker = LeaseTracker(LEASE_TIME_INFINITE, leases)
    pid = "dnsmasq-dhcp[42]: "
    mac1, mac2, mac3 = (f"02:00:00:00:00:0{n}" for n in (1, 2, 3))
    for line in (
        f"{pid}77 client provides name: vm-one",
        f"{pid}77 DHCPREQUEST(ovd1) 10.0.0.5 {mac1} ",
        f"{pid}88 client provides name: $(reboot)",  # not a hostname: dropped
        f"{pid}88 DHCPREQUEST(ovd1) 10.0.0.6 {mac2} ",
        f"{pid}99 client provides name: vm-three.example",  # another exchange's name
        f"{pid}88 DHCPACK(ovd1) 10.0.0.6 {mac2} ",
        f"{pid}77 DHCPACK(ovd1) 10.0.0.5 {mac1} ",
        f"{pid}123 DHCPNAK(ovd1) 10.0.0.7 {mac3} wrong address",
    ):
        tracker.feed(line, now=1000.0)
    # The lease file does not show the ACKs yet (dnsmasq writes it right after it
    # logs them): the bound facts wait; the NAK goes at once.
    first = tracker.take()
    assert first is not None
    assert [(f.mac_address, f.state) for f in first[0]] == [(mac3, "nak")]
    assert first[0][0].client_hostname is None  # XID 123 sent no name
    clid = "ff:00:00:00:01:" + ":".join(["ab"] * 14)  # an RFC 4361 client id
    leases.write_text(
        f"0 {mac1} 10.0.0.5 * {clid}\n"
        f"0 {mac2} 10.0.0.9 * 01:{mac2}\n"  # another address: not this ACK's lease
        "duid 00:01:00:01:2a:2b:2c:2d:02:00:00:00:00:01\n"
    )
    second = tracker.take()
    assert second is not None
    by_mac = {f.mac_address: f for f in second[0]}
    assert set(by_mac) == {mac1}
    assert (by_mac[mac1].client_id, by_mac[mac1].client_hostname) == (clid, "vm-one")
    # mac2's lease never shows with its address: after its wait it goes without.
    waited = [tracker.take() for _ in range(3)]
    facts = [f for batch in waited if batch for f in batch[0]]
    assert [(f.mac_address, f.client_id, f.client_hostname) for f in facts] == [(mac2, None, None)]
    assert tracker.take() is None
    # A lease file line whose client id does not follow the grammar gives none.
    leases.write_text(f"0 {mac1} 10.0.0.5 * 01:ZZ\n")
    tracker.rebuild(leases)
    batch = tracker.take()
    assert batch is not None and [(f.mac_address, f.client_id) for f in batch[0]] == [(mac1, None)]


@pytest.mark.parametrize(
    "name, ok",
    [
        ("vm-1", True),
        ("VM_1.example.org.", True),
        ("a" * 63, True),
        ("a" * 64, False),
        (".".join(["a" * 63] * 4), False),  # 255 characters
        ("-vm", False),
        ("vm..one", False),
        ("vm one", False),
        ("vm;reboot", False),
        ("", False),
    ],
)
def test_client_hostname_rule(name: str, ok: bool) -> None:
    assert is_client_hostname(name) is ok
