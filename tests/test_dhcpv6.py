"""IPv6 on the data plane with the real parts: the interface driver's namespace on a
bridge, a real dnsmasq serving a dual-stack network, VMs as namespaces running ISC
``dhclient -6`` and the kernel's own SLAAC (docs/ipv6-dataplane.md). No bus: the
engine's state is given directly, as in test_served_network."""

from __future__ import annotations

import ipaddress
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcp_driver.dnsmasq_process import read_leases6
from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.lease_log import LeaseTracker
from dhcp_driver.mapping import write_mapping
from dhcp_driver.served_network import ServedNetwork
from ipam.bus.contracts import (
    LEASE_TIME_INFINITE,
    FixedIp,
    NetworkInfo,
    NetworkState,
    PortState,
    SubnetState,
)
from ipam.lab.netparts import Bridge, Vm, rand
from ipam.polling import wait_for
from ipam.store.allocation import eui64
from tests import dhcp6msg

pytestmark = pytest.mark.root

CIDR4, CIDR6 = "10.78.0.0/24", "2001:db8:78::/64"
DNS6 = ["2001:db8:78::53"]
MTU = 1450


class World:
    """One served dual-stack network: an IPv4 subnet and an IPv6 one with the given modes."""

    def __init__(self, tmp: Path, address_mode: str | None, ra_mode: str | None) -> None:
        self.tmp = tmp
        self.net_id = str(uuid.uuid4())
        self.v4, self.v6 = str(uuid.uuid4()), str(uuid.uuid4())
        self.address_mode, self.ra_mode = address_mode, ra_mode
        self.bridge = Bridge()
        write_mapping(tmp / "mapping.json", [{"name": self.bridge.name, "id": self.net_id}])
        self.vms: list[Vm] = []
        # (driver, its server): the driver is recorded before it plugs, so that
        # close() unplugs it even when the server was never made.
        self.servers: list[tuple[OvirtInterfaceDriver, ServedNetwork | None]] = []
        self.dhcp_port, self.served = self.server(2)

    def server(self, host: int) -> tuple[PortState, ServedNetwork]:
        """A DHCP server of the network as a host's agent runs it: its own namespace
        on the bridge, DHCP port (addresses .host / ::host) and dnsmasq."""
        driver = OvirtInterfaceDriver(str(self.tmp / "mapping.json"), f"t-{rand()}-")
        dhcp_port = self.port(f"02:aa:00:00:00:{host:02x}", host, owner="network:dhcp")
        self.servers.append((driver, None))
        driver.plug_new(self.net_id, dhcp_port.mac_address, self.bridge.name, MTU)
        prefix = {4: "24", 6: "64"}
        driver.init_l3(
            self.net_id,
            [
                f"{f.ip_address}/{prefix[ipaddress.ip_address(f.ip_address).version]}"
                for f in dhcp_port.fixed_ips
            ],
        )
        served = ServedNetwork(
            self.net_id,
            self.tmp / f"dhcp-{host}" / self.net_id,
            driver.namespace_name(self.net_id),
            driver.device_names(self.net_id)[1],
            lease_time=3600,
            confirm_timeout=5,
        )
        self.servers[-1] = (driver, served)
        return dhcp_port, served

    @property
    def auto(self) -> bool:
        return self.address_mode in ("slaac", "dhcpv6-stateless")

    def address6(self, mac: str, host: int) -> str:
        if self.auto:
            return str(eui64(CIDR6, mac))
        return str(ipaddress.IPv6Network(CIDR6)[host])

    def port(self, mac: str, host: int, owner: str = "oVirt", rev: int = 1) -> PortState:
        return PortState(
            id=str(uuid.uuid4()),
            network_id=self.net_id,
            mac_address=mac,
            fixed_ips=[
                FixedIp(subnet_id=self.v4, ip_address=f"10.78.0.{host}"),
                FixedIp(subnet_id=self.v6, ip_address=self.address6(mac, host)),
            ],
            revision_number=rev,
            device_owner=owner,
            admin_state_up=True,
        )

    def state(self, ports: list[PortState], dhcp_port: PortState | None = None) -> NetworkState:
        return NetworkState(
            network=NetworkInfo(
                id=self.net_id,
                vdsm_name=self.bridge.name,
                mtu=MTU,
                admin_state_up=True,
                revision_number=1,
            ),
            subnets=[
                SubnetState(
                    id=self.v4,
                    cidr=CIDR4,
                    gateway_ip="10.78.0.1",
                    enable_dhcp=True,
                    dns_nameservers=[],
                    host_routes=[],
                    revision_number=1,
                ),
                SubnetState(
                    id=self.v6,
                    cidr=CIDR6,
                    gateway_ip="2001:db8:78::1",
                    enable_dhcp=True,
                    dns_nameservers=DNS6,
                    host_routes=[],
                    revision_number=1,
                    ip_version=6,
                    ipv6_address_mode=self.address_mode,
                    ipv6_ra_mode=self.ra_mode,
                ),
            ],
            ports=[*ports, dhcp_port or self.dhcp_port],
            dhcp_port=dhcp_port or self.dhcp_port,
        )

    def vm(self, mac: str, accept_ra: bool = False) -> Vm:
        vm = Vm(self.bridge.name, mac)
        self.vms.append(vm)
        vm.ipv6_up(accept_ra=accept_ra)
        return vm

    def close(self) -> None:
        for vm in self.vms:
            vm.remove()
        for driver, served in self.servers:
            if served is not None:
                served.stop()
            driver.unplug(self.net_id)
        self.bridge.remove()


def make_world(tmp: Path, address_mode: str | None, ra_mode: str | None) -> Iterator[World]:
    w = World(tmp, address_mode, ra_mode)
    try:
        yield w
    finally:
        w.close()


def solicits(world: World, mac: str) -> int:
    """DHCPSOLICITs dnsmasq logged from the client of this MAC (the DUIDs dhclient and
    udhcpc6 make, LLT and LL, end with it)."""
    text = world.served.paths.log.read_text()
    return sum(
        1 for line in text.splitlines() if "DHCPSOLICIT" in line and line.endswith(mac + " ")
    )


UDHCPC6 = Path(__file__).resolve().parents[1] / "build" / "bin" / "udhcpc6"


@pytest.fixture
def udhcpc6() -> str:
    """busybox's DHCPv6 client, which Debian's busybox lacks: tools/test.sh builds it."""
    if not UDHCPC6.exists():
        pytest.skip(f"no {UDHCPC6}: run tools/build_udhcpc6.sh {UDHCPC6} (tools/test.sh does)")
    return str(UDHCPC6)


@pytest.fixture
def stateful(tmp_path: Path) -> Iterator[World]:
    """What the oVirt engine creates: no modes (DHCPv6 stateful, no advertisements)."""
    yield from make_world(tmp_path, None, None)


@pytest.mark.parametrize("client", ["dhclient", "udhcpc6"])
@pytest.mark.parametrize("modes", [(None, None), ("dhcpv6-stateful", "dhcpv6-stateful")])
def test_stateful_vm_gets_exactly_its_addresses_on_its_first_exchange(
    tmp_path: Path,
    modes: tuple[str | None, str | None],
    client: str,
    request: pytest.FixtureRequest,
) -> None:
    for world in make_world(tmp_path, *modes):
        port = world.port("02:00:00:00:20:01", 0x20)
        acks = world.served.apply_state(world.state([port]))
        assert [a.id for a in acks] == [port.id]
        # With advertisements (M and O, prefix not autonomous) the kernel takes no
        # address of its own: the VM's only global address is the leased one.
        vm = world.vm(port.mac_address, accept_ra=modes[1] is not None)
        if client == "dhclient":
            lease = vm.dhclient6(world.tmp, configure=True)
            assert lease is not None, "no DHCPv6 lease"
            address, dns = lease["ip6"], lease["dns"]
        else:  # one SOLICIT (-t 1): the first exchange or nothing
            got = vm.udhcpc6(world.tmp, request.getfixturevalue("udhcpc6"), tries=1)
            assert got is not None, "no DHCPv6 lease"
            address, dns = got["ipv6"], got["dns"]
            vm.add_address6(address)
        assert address == world.address6(port.mac_address, 0x20)
        assert dns.split() == DNS6
        assert solicits(world, port.mac_address) == 1
        lease4 = vm.udhcpc(world.tmp, tries=1)
        assert lease4 is not None and lease4["ip"] == "10.78.0.32"
        assert vm.addresses6() == {address}
        # Advertised only when ipv6_ra_mode says so, and never as a default router.
        if modes[1]:
            wait_for(lambda: vm.ra_routes() == {CIDR6}, 10, "the advertised prefix")  # noqa: B023
        else:
            assert vm.ra_routes() == set()


@pytest.mark.parametrize("client", ["kernel", "dhclient"])
def test_slaac_vm_gets_exactly_its_eui64_address_and_the_mtu(tmp_path: Path, client: str) -> None:
    for world in make_world(tmp_path, "slaac", "slaac"):
        port = world.port("02:00:00:00:21:01", 0x21)
        acks = world.served.apply_state(world.state([port]))
        assert [a.id for a in acks] == [port.id]
        vm = world.vm(port.mac_address, accept_ra=True)
        expected = world.address6(port.mac_address, 0x21)
        wait_for(lambda: vm.addresses6() == {expected}, 10, "the SLAAC address")  # noqa: B023
        assert vm.ra_routes() == {CIDR6}
        assert vm.ipv6_mtu() == MTU
        if client == "dhclient":  # no DHCPv6 on a slaac subnet: nothing to be had
            assert vm.dhclient6(world.tmp, stateless=True, timeout=3) is None


def test_stateless_vm_gets_its_slaac_address_and_dns_by_dhcpv6(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for world in make_world(tmp_path, "dhcpv6-stateless", "dhcpv6-stateless"):
        port = world.port("02:00:00:00:22:01", 0x22)  # dual stack
        v6_only = world.port("02:00:00:00:22:02", 0x23)  # IPv6 only
        v6_only = v6_only.model_copy(update={"fixed_ips": v6_only.fixed_ips[1:]})
        acks = world.served.apply_state(world.state([port, v6_only]))
        assert {a.id for a in acks} == {port.id, v6_only.id}
        for p in (port, v6_only):
            vm = world.vm(p.mac_address, accept_ra=True)
            expected = world.address6(p.mac_address, 0)
            wait_for(lambda vm=vm, e=expected: vm.addresses6() == {e}, 10, "the SLAAC address")
            info = vm.dhclient6(world.tmp, stateless=True)
            assert info is not None, "no answer to the information-request"
            assert info["dns"].split() == DNS6 and info["ip6"] == ""
            info6 = vm.udhcpc6(world.tmp, request.getfixturevalue("udhcpc6"), stateless=True)
            assert info6 is not None and info6["dns"].split() == DNS6 and info6["ipv6"] == ""
            assert vm.addresses6() == {expected}
        lease4 = world.vms[0].udhcpc(world.tmp, tries=1)
        assert lease4 is not None and lease4["ip"] == "10.78.0.34"
        assert world.vms[1].udhcpc(world.tmp, tries=1, timeout=1) is None
        unknown = world.vm("02:00:00:00:22:99", accept_ra=True)
        assert unknown.dhclient6(world.tmp, stateless=True, timeout=3) is None


def test_a_deleted_port_loses_its_address_and_a_new_port_gets_it(
    stateful: World, udhcpc6: str
) -> None:
    world, leases = stateful, stateful.served.paths.leases
    old = world.port("02:00:00:00:30:01", 0x30)
    world.served.apply_state(world.state([old]))
    lease = world.vm(old.mac_address).dhclient6(world.tmp)
    assert lease is not None
    address = lease["ip6"]
    wait_for(lambda: address in read_leases6(leases)[1], 5, "the lease in the lease file")

    world.served.delete_port(old.model_copy(update={"revision_number": 2}))
    # A tombstone does not take an IPv6 lease back: the agent released it.
    wait_for(lambda: address not in read_leases6(leases)[1], 10, "the lease released")
    again = world.vm(old.mac_address)
    assert again.udhcpc6(world.tmp, udhcpc6, tries=1, timeout=1) is None
    logged = world.served.paths.log.read_text().splitlines()
    assert any(line.endswith(f"{again.mac} no addresses available") for line in logged)

    new = world.port("02:00:00:00:30:02", 0x30)  # the freed address, to another MAC
    assert new.fixed_ips[1].ip_address == address
    acks = world.served.update_ports([new])
    assert [a.id for a in acks] == [new.id]
    got = world.vm(new.mac_address).udhcpc6(world.tmp, udhcpc6)
    assert got is not None and got["ipv6"] == address


def test_dhcpv6_leases_hold_across_respawn_and_failover(stateful: World) -> None:
    """A client renews with the server it leased from, named by DUID. A respawned
    dnsmasq keeps its leases and renews. Every server of a network has the same DUID,
    so another host's server answers the RENEW too, at once, NoBinding (it holds no
    lease), and the REQUEST a client then sends (RFC 8415 18.2.10.1) gets the address;
    so does a REBIND. With a DUID of its own it would drop the RENEW unanswered."""
    world = stateful
    port = world.port("02:00:00:00:40:01", 0x40)
    world.served.apply_state(world.state([port]))
    vm = world.vm(port.mac_address)
    lease = vm.dhclient6(world.tmp, configure=True)
    assert lease is not None
    address = lease["ip6"]
    server, leases = wait_for(
        lambda: (lambda r: r if address in r[1] else None)(read_leases6(world.served.paths.leases)),
        5,
        "the lease in the lease file",
    )
    iaid, client = int(leases[address][0]), dhcp6msg.hexbytes(leases[address][1])
    assert server is not None
    duid = dhcp6msg.hexbytes(server)

    def answer(msg_type: int, server_duid: bytes | None) -> dhcp6msg.Reply:
        reply = dhcp6msg.exchange(vm.ns, msg_type, client, iaid, address, server_duid)
        assert reply is not None, "no reply"
        assert reply.server_duid == duid
        return reply

    def renewed(msg_type: int, server_duid: bytes | None) -> bool:
        reply = answer(msg_type, server_duid)
        return reply.addresses.get(address, 0) > 0 and reply.status in (None, 0)

    assert renewed(dhcp6msg.RENEW, duid)
    # Respawn: dnsmasq killed, started again by the agent's supervision, lease file kept.
    old_pid = world.served.process.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: world.served.check() is not None, 10, "the respawn")
    assert world.served.process.pid != old_pid
    assert renewed(dhcp6msg.RENEW, duid)

    # Failover: another host's server takes over; the first one is gone.
    dhcp_port2, served2 = world.server(3)
    served2.apply_state(world.state([port], dhcp_port2))
    world.served.stop()
    assert answer(dhcp6msg.RENEW, duid).status == dhcp6msg.NO_BINDING
    assert renewed(dhcp6msg.REQUEST, duid)
    assert renewed(dhcp6msg.RENEW, duid)
    assert renewed(dhcp6msg.REBIND, None)
    assert address in read_leases6(served2.paths.leases)[1]
    # log-dhcp's account of every DHCPv6 exchange above is known to the lease
    # tracker: none of its lines is taken for a packet log it cannot read.
    for served in (world.served, served2):
        tracker = LeaseTracker(LEASE_TIME_INFINITE)
        lines = served.paths.log.read_text().splitlines()
        assert any("DHCPRENEW(" in line for line in lines) or served is world.served
        for line in lines:
            tracker.feed(line)
        assert tracker.unparsed == 0
