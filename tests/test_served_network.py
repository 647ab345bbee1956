"""One served network with the real parts: the interface driver's namespace and
veth on a bridge, a real dnsmasq, VMs as namespaces running busybox udhcpc and
ISC dhclient. No bus: the engine's state is given directly."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.mapping import write_mapping
from dhcp_driver.served_network import ServedNetwork
from ipam.bus.contracts import (
    FixedIp,
    HostRoute,
    NetworkInfo,
    NetworkState,
    PortState,
    SubnetState,
)
from ipam.lab.netparts import Bridge, Vm, rand
from ipam.polling import wait_for
from tests.dhcpclients import RunningClient

pytestmark = pytest.mark.root

CIDR, GATEWAY, DNS = "10.77.0.0/24", "10.77.0.1", ["10.77.0.53", "10.77.0.54"]


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.net_id, self.subnet_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.bridge = Bridge()
        self.driver = OvirtInterfaceDriver(str(tmp / "mapping.json"), f"t-{rand()}-")
        write_mapping(tmp / "mapping.json", [{"name": self.bridge.name, "id": self.net_id}])
        self.vms: list[Vm] = []
        self.ports: dict[str, PortState] = {}
        self.dhcp_port = self.port("02:aa:00:00:00:01", "10.77.0.2", owner="network:dhcp")
        self.driver.plug_new(self.net_id, self.dhcp_port.mac_address, self.bridge.name, 1450)
        self.driver.init_l3(self.net_id, ["10.77.0.2/24"])
        self.served = ServedNetwork(
            self.net_id,
            tmp / "dhcp" / self.net_id,
            self.driver.namespace_name(self.net_id),
            self.driver.device_names(self.net_id)[1],
            lease_time=120,
            confirm_timeout=5,
        )

    def port(
        self, mac: str, ip: str, owner: str = "oVirt", rev: int = 1, port_id: str | None = None
    ) -> PortState:
        return PortState(
            id=port_id or str(uuid.uuid4()),
            network_id=self.net_id,
            mac_address=mac,
            fixed_ips=[FixedIp(subnet_id=self.subnet_id, ip_address=ip)],
            revision_number=rev,
            device_owner=owner,
            admin_state_up=True,
        )

    def state(
        self,
        ports: list[PortState],
        routes: list[HostRoute] | None = None,
        gateway: str | None = GATEWAY,
    ) -> NetworkState:
        return NetworkState(
            network=NetworkInfo(
                id=self.net_id,
                vdsm_name=self.bridge.name,
                mtu=1450,
                admin_state_up=True,
                revision_number=1,
            ),
            subnets=[
                SubnetState(
                    id=self.subnet_id,
                    cidr=CIDR,
                    gateway_ip=gateway,
                    enable_dhcp=True,
                    dns_nameservers=DNS,
                    host_routes=routes or [],
                    revision_number=1,
                )
            ],
            ports=[*ports, self.dhcp_port],
            dhcp_port=self.dhcp_port,
        )

    def vm(self, mac: str) -> Vm:
        vm = Vm(self.bridge.name, mac)
        self.vms.append(vm)
        return vm

    def close(self) -> None:
        for vm in self.vms:
            vm.remove()
        self.served.stop()
        self.driver.unplug(self.net_id)
        self.bridge.remove()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


@pytest.mark.parametrize("client", ["udhcpc", "dhclient"])
def test_vm_gets_exactly_its_ip_gateway_dns_and_mtu(world: World, client: str) -> None:
    port = world.port("02:00:00:00:10:01", "10.77.0.10")
    acks = world.served.apply_state(world.state([port]))
    assert [(a.id, a.revision_number) for a in acks] == [(port.id, 1)]
    vm = world.vm(port.mac_address)
    lease = vm.udhcpc(world.tmp) if client == "udhcpc" else vm.dhclient(world.tmp)
    assert lease is not None
    assert lease["ip"] == "10.77.0.10"
    assert lease["router"] == GATEWAY
    assert lease["dns"].split() == DNS
    assert lease["mtu"] == "1450"


def test_unknown_mac_gets_nothing(world: World) -> None:
    world.served.apply_state(world.state([world.port("02:00:00:00:10:01", "10.77.0.10")]))
    assert world.vm("02:00:00:00:99:99").udhcpc(world.tmp, tries=1, timeout=1) is None


def test_an_update_is_acknowledged_only_once_dnsmasq_read_it(world: World) -> None:
    world.served.apply_state(world.state([]))
    port = world.port("02:00:00:00:10:02", "10.77.0.11")
    log_before = world.served.paths.log.read_text()
    acks = world.served.update_ports([port])
    assert [a.id for a in acks] == [port.id]
    read_line = f"read {world.served.paths.hostsdir}/{port.id}"
    assert read_line not in log_before and read_line in world.served.paths.log.read_text()
    same = world.served.update_ports([port.model_copy(update={"revision_number": 2})])
    assert [(a.id, a.revision_number) for a in same] == [(port.id, 2)]  # unchanged entry
    stale = world.served.update_ports([port.model_copy(update={"revision_number": 1})])
    assert stale == []


def test_deleted_port_is_refused_and_its_ip_serves_a_new_mac(world: World) -> None:
    old = world.port("02:00:00:00:10:03", "10.77.0.12")
    world.served.apply_state(world.state([old]))
    vm = world.vm(old.mac_address)
    assert vm.udhcpc(world.tmp)["ip"] == "10.77.0.12"  # type: ignore[index]
    world.served.delete_port(old)
    assert vm.udhcpc(world.tmp, tries=1, timeout=1) is None
    new = world.port("02:00:00:00:10:04", "10.77.0.12")
    acks = world.served.update_ports([new])
    assert [a.id for a in acks] == [new.id]
    vm.set_mac(new.mac_address)
    assert vm.udhcpc(world.tmp)["ip"] == "10.77.0.12"  # type: ignore[index]


def test_ip_change_is_served_with_the_new_ip(world: World) -> None:
    port = world.port("02:00:00:00:10:05", "10.77.0.13")
    world.served.apply_state(world.state([port]))
    moved = world.port(port.mac_address, "10.77.0.14", rev=2, port_id=port.id)
    assert [a.revision_number for a in world.served.update_ports([moved])] == [2]
    assert world.vm(port.mac_address).udhcpc(world.tmp)["ip"] == "10.77.0.14"  # type: ignore[index]


def test_killed_dnsmasq_is_respawned_and_serves(world: World) -> None:
    port = world.port("02:00:00:00:10:06", "10.77.0.15")
    world.served.apply_state(world.state([port]))
    pid = world.served.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not world.served.process.alive(), 5, "dnsmasq to die")
    acks = wait_for(lambda: world.served.check(), 2, "dnsmasq respawned")
    assert world.served.process.pid != pid and [a.id for a in acks] == [port.id]
    assert world.vm(port.mac_address).udhcpc(world.tmp)["ip"] == "10.77.0.15"  # type: ignore[index]


def test_a_new_agent_adopts_the_running_dnsmasq(world: World) -> None:
    port = world.port("02:00:00:00:10:07", "10.77.0.16")
    world.served.apply_state(world.state([port]))
    pid = world.served.process.pid
    world.served.log.close()
    again = ServedNetwork(
        world.net_id,
        world.served.paths.base,
        world.served.namespace,
        world.served.interface,
        lease_time=120,
        confirm_timeout=5,
    )
    world.served = again
    acks = again.apply_state(world.state([port]))
    assert again.process.pid == pid  # adopted, not restarted
    assert [a.id for a in acks] == [port.id]  # its log shows the entry was read
    assert world.vm(port.mac_address).udhcpc(world.tmp)["ip"] == "10.77.0.16"  # type: ignore[index]


def test_host_routes_reach_the_client(world: World) -> None:
    port = world.port("02:00:00:00:10:08", "10.77.0.17")
    route = HostRoute(destination="10.30.0.0/16", nexthop="10.77.0.254")
    world.served.apply_state(world.state([port], routes=[route]))
    lease = world.vm(port.mac_address).udhcpc(world.tmp)
    assert lease is not None and lease["ip"] == "10.77.0.17"
    # Option 121, with the default route added because clients then ignore option 3.
    assert lease["staticroutes"].split() == ["10.30.0.0/16", "10.77.0.254", "0.0.0.0/0", GATEWAY]


def test_a_big_log_is_rotated_and_acknowledgements_go_on(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dhcp_driver import served_network

    world.served.apply_state(world.state([]))
    monkeypatch.setattr(served_network, "LOG_ROTATE_BYTES", 1)
    assert world.served.check() is None  # alive: rotates instead
    assert world.served.paths.log.with_suffix(".log.1").exists()
    monkeypatch.setattr(served_network, "LOG_ROTATE_BYTES", 1 << 40)
    port = world.port("02:00:00:00:10:09", "10.77.0.18")
    assert [a.id for a in world.served.update_ports([port])] == [port.id]
    # dnsmasq reopens its log when it handles SIGUSR2: the line is in one of the two.
    logs = (
        world.served.paths.log.with_suffix(".log.1").read_text()
        + world.served.paths.log.read_text()
    )
    assert f"read {world.served.paths.hostsdir}/{port.id}" in logs


@pytest.mark.parametrize("client", ["udhcpc", "dhclient"])
def test_a_subnet_without_gateway_sends_no_router(world: World, client: str) -> None:
    """dnsmasq would offer its own address as the router: a route into a namespace
    that forwards nothing."""
    port = world.port("02:00:00:00:10:0a", "10.77.0.19")
    world.served.apply_state(world.state([port], gateway=None))
    vm = world.vm(port.mac_address)
    lease = vm.udhcpc(world.tmp) if client == "udhcpc" else vm.dhclient(world.tmp)
    assert lease is not None and lease["ip"] == "10.77.0.19"
    assert lease.get("router", "") == ""


def test_the_mtu_reaches_a_client_that_does_not_ask_for_it(world: World) -> None:
    port = world.port("02:00:00:00:10:0b", "10.77.0.20")
    world.served.apply_state(world.state([port]))
    client = RunningClient(world.vm(port.mac_address), "udhcpc", world.tmp)  # no -O mtu
    try:
        got = client.wait_bound(client.start(), 10)
    finally:
        client.stop()
    assert got.ip == "10.77.0.20" and got.mtu == "1450"


def test_a_default_host_route_never_makes_a_second_default_route(world: World) -> None:
    """Neutron's rule: with a gateway, a 0.0.0.0/0 host route is dropped; without
    one, its nexthop is the router."""
    port = world.port("02:00:00:00:10:0c", "10.77.0.21")
    routes = [
        HostRoute(destination="0.0.0.0/0", nexthop="10.77.0.254"),
        HostRoute(destination="10.30.0.0/16", nexthop="10.77.0.253"),
    ]
    world.served.apply_state(world.state([port], routes=routes))
    vm = world.vm(port.mac_address)
    lease = vm.udhcpc(world.tmp)
    assert lease is not None
    assert lease["staticroutes"].split() == ["10.30.0.0/16", "10.77.0.253", "0.0.0.0/0", GATEWAY]
    assert lease["router"] == GATEWAY
    world.served.apply_state(world.state([port], routes=routes, gateway=None))  # restarts dnsmasq
    lease = vm.udhcpc(world.tmp)
    assert lease is not None
    assert lease["staticroutes"].split() == [
        "10.30.0.0/16",
        "10.77.0.253",
        "0.0.0.0/0",
        "10.77.0.254",
    ]
    assert lease["router"] == "10.77.0.254"


_FOREIGN_LEASE = """lease {
  interface "eth0";
  fixed-address 10.55.0.9;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 10.55.0.2;
  renew 4 2037/01/01 00:00:00;
  rebind 4 2037/01/01 00:00:00;
  expire 4 2037/01/01 00:00:00;
}
"""


def test_a_deleted_ports_client_is_told_to_let_its_address_go(world: World) -> None:
    port = world.port("02:00:00:00:10:0d", "10.77.0.22")
    world.served.apply_state(world.state([port]))
    client = RunningClient(world.vm(port.mac_address), "dhclient", world.tmp)
    try:
        assert client.wait_bound(client.start(), 10).ip == "10.77.0.22"
        world.served.delete_port(port)
        rebooted = client.reboot()  # INIT-REBOOT for 10.77.0.22
        wait_for(lambda: "DHCPNAK from" in client.output.read_text(), 5, "a DHCPNAK")
        wait_for(lambda: "DHCPDISCOVER" in client.output.read_text(), 5, "a DISCOVER")
    finally:
        client.stop()
    assert client.client.configured(rebooted) is None  # nothing bound
    assert "address not available" in world.served.paths.log.read_text()


def test_a_client_moved_from_another_network_is_nakked_and_gets_its_address(
    world: World,
) -> None:
    """The VM holds a lease of another network (its vNIC moved): its INIT-REBOOT is
    NAKed ("wrong network") and its one DISCOVER then gets its port's address."""
    port = world.port("02:00:00:00:10:0e", "10.77.0.23")
    world.served.apply_state(world.state([port]))
    client = RunningClient(world.vm(port.mac_address), "dhclient", world.tmp)
    client.leases.write_text(_FOREIGN_LEASE)
    try:
        started = client.start()
        got = client.wait_bound(started, 5)
    finally:
        client.stop()
    assert got.ip == "10.77.0.23" and got.at - started < 2.0
    assert "DHCPNAK from 10.77.0.2" in client.output.read_text()
    assert "wrong network" in world.served.paths.log.read_text()


def test_a_client_that_is_not_a_port_is_left_alone(world: World) -> None:
    """Authoritative for our ports only: another server's client on a shared network,
    rebooting with its lease, is not NAKed."""
    port = world.port("02:00:00:00:10:0f", "10.77.0.24")
    world.served.apply_state(world.state([port]))
    stranger = RunningClient(world.vm("02:00:00:00:99:0f"), "dhclient", world.tmp)
    stranger.leases.write_text(_FOREIGN_LEASE.replace("10.55.0.9", "10.77.0.99"))
    try:
        stranger.start()
        wait_for(lambda: "DHCPREQUEST for" in stranger.output.read_text(), 5, "its request")
        # dnsmasq answers in order: once a port's client is bound, it has seen the request.
        assert world.vm(port.mac_address).udhcpc(world.tmp)["ip"] == "10.77.0.24"  # type: ignore[index]
        out = stranger.output.read_text()
    finally:
        stranger.stop()
    assert "DHCPNAK" not in out and "DHCPNAK" not in world.served.paths.log.read_text()
