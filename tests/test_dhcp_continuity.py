"""Running VMs keep their addresses across failover, respawn and new placement
(DESIGN.md, Invariants and dnsmasq facts), proven with real dnsmasq and real
clients, busybox udhcpc and ISC dhclient, on one bridge.

Three DHCP servers of one network, as three hosts' agents would run them (each its
own namespace, veth and DHCP port on the bridge): A serves first; A dies and B
takes over (a fresh dnsmasq with no leases); an IP changes; C is newly placed;
B's dnsmasq is SIGKILLed and respawned with its lease file deleted. Meanwhile
clients keep running until every one has renewed or rebound, lease time 120 s
(dnsmasq's minimum). One timeline, shared by the tests below: it takes about as
long as dhclient's rebind at T2 (105 s).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.mapping import write_mapping
from dhcp_driver.netns import entered
from dhcp_driver.served_network import ServedNetwork
from ipam.bus.contracts import FixedIp, NetworkInfo, NetworkState, PortState, SubnetState
from ipam.lab.dhcpclient import LOST, AddressWatch
from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, Vm, rand
from ipam.polling import wait_for
from tests.dhcpclients import RENEWED, Event, RunningClient

pytestmark = pytest.mark.root

LEASE = 120
CIDR, GATEWAY = "10.78.0.0/24", "10.78.0.1"
CLIENTS = ("udhcpc", "dhclient")


class Server:
    """One host's DHCP server for the network, as its agent runs it: the host is a
    namespace whose bridge is uplinked to the network's segment; the DHCP namespace,
    veth and DHCP port hang off that bridge; dnsmasq serves in it."""

    def __init__(self, site: Site, name: str, ip: str) -> None:
        self.name, self.ip, self.site = name, ip, site
        self.host = LabHost(
            site.tmp, f"{name}{rand(4)}", "", {site.vdsm: site.bridge.name}, start=False
        )
        mapping = self.host.state / "mapping.json"
        self.driver = OvirtInterfaceDriver(str(mapping), self.host.prefix)
        write_mapping(mapping, [{"name": site.vdsm, "id": site.net_id}])
        self.port = site.port(f"02:aa:00:00:00:{ip.split('.')[-1]:0>2}", ip, "network:dhcp")
        with entered(self.host.ns):
            self.driver.plug_new(site.net_id, self.port.mac_address, site.vdsm, 1450)
            self.driver.init_l3(site.net_id, [f"{ip}/24"])
        self.served = ServedNetwork(
            site.net_id,
            self.host.state / "dhcp" / site.net_id,
            self.driver.namespace_name(site.net_id),
            self.driver.device_names(site.net_id)[1],
            lease_time=LEASE,
            confirm_timeout=5,
        )
        self.dead = False

    def serve(self) -> None:
        self.served.apply_state(self.site.state(self.port))

    def log(self) -> str:
        return self.served.paths.log.read_text()

    def kill(self) -> None:
        """The host dies: its dnsmasq is SIGKILLed and it drops off the segment."""
        os.kill(self.served.process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        wait_for(lambda: not self.served.process.alive(), 5, "dnsmasq to die")
        self.host.set_uplinks(False)
        self.dead = True

    def close(self) -> None:
        if not self.dead:
            self.served.stop()
        self.served.log.close()
        self.host.close()


@dataclass
class Vmc:
    """A VM with its running client and its port."""

    vm: Vm
    client: RunningClient
    port: PortState
    first: Event | None = None


@dataclass
class Timeline:
    """What happened, for the tests to judge."""

    vms: dict[str, Vmc] = field(default_factory=dict)
    killed_at: float = 0.0
    reboots: dict[str, Event] = field(default_factory=dict)  # after the takeover
    reboot_s: dict[str, float] = field(default_factory=dict)
    renumbered: dict[str, Event] = field(default_factory=dict)
    renumber_s: dict[str, float] = field(default_factory=dict)
    new_server_reboots: dict[str, Event] = field(default_factory=dict)
    gaps: dict[str, float] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)  # server name -> its address
    events: dict[str, list[Event]] = field(default_factory=dict)  # VM -> after the kill
    outputs: dict[str, str] = field(default_factory=dict)  # VM -> its client's output


class Site:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.net_id, self.subnet_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.bridge = Bridge()  # the network's L2 segment, which the VMs are on
        self.vdsm = f"vc{rand(6)}"  # the bridge's name on each host
        self.ports: dict[str, PortState] = {}
        self.servers: list[Server] = []
        self.vms: list[Vm] = []
        self.clients: list[RunningClient] = []

    def port(self, mac: str, ip: str, owner: str = "oVirt") -> PortState:
        port = PortState(
            id=str(uuid.uuid4()),
            network_id=self.net_id,
            mac_address=mac,
            fixed_ips=[FixedIp(subnet_id=self.subnet_id, ip_address=ip)],
            revision_number=1,
            device_owner=owner,
            admin_state_up=True,
        )
        self.ports[port.id] = port
        return port

    def renumber(self, port: PortState, ip: str) -> PortState:
        new = port.model_copy(
            update={
                "fixed_ips": [FixedIp(subnet_id=self.subnet_id, ip_address=ip)],
                "revision_number": port.revision_number + 1,
            }
        )
        self.ports[port.id] = new
        return new

    def state(self, dhcp_port: PortState) -> NetworkState:
        return NetworkState(
            network=NetworkInfo(
                id=self.net_id,
                vdsm_name=self.vdsm,
                mtu=1450,
                admin_state_up=True,
                revision_number=1,
            ),
            subnets=[
                SubnetState(
                    id=self.subnet_id,
                    cidr=CIDR,
                    gateway_ip=GATEWAY,
                    enable_dhcp=True,
                    dns_nameservers=[],
                    host_routes=[],
                    revision_number=1,
                )
            ],
            ports=list(self.ports.values()),
            dhcp_port=dhcp_port,
        )

    def server(self, name: str, ip: str) -> Server:
        server = Server(self, name, ip)
        self.servers.append(server)
        return server

    def vm(self, kind: str, n: int) -> Vmc:
        mac = f"02:00:5e:78:00:{n:02x}"
        port = self.port(mac, f"10.78.0.{10 + n}")
        vm = Vm(self.bridge.name, mac)
        self.vms.append(vm)
        client = RunningClient(vm, kind, self.tmp)
        self.clients.append(client)
        return Vmc(vm, client, port)

    def close(self) -> None:
        for client in self.clients:
            client.stop()
        for vm in self.vms:
            vm.remove()
        for server in self.servers:
            server.close()
        self.bridge.remove()


def _reboot(vmc: Vmc, timeout: float = 10) -> tuple[Event, float]:
    started = vmc.client.reboot()
    got = vmc.client.wait_bound(started, timeout)
    return got, got.at - started


class Continuity:
    """The timeline, in two parts. The first (leases, A's death and B's takeover, the
    reboots, the renumbering, C's placement, B's respawn without its lease file) runs
    when it is started. The second only waits, in a thread of its own, until every
    client has renewed or rebound (past dhclient's T2: most of the module's time),
    then takes what the tests judge: the eth0 gaps, the servers' logs, each client's
    events and output at that moment.

    It is started before the session's first test (start_early, called by conftest's
    _started_early), so that the tests that run before this module's overlap the
    second part's wait; run alone, the module's fixture waits for it as before."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.site: Site | None = None
        self.t = Timeline()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False

    def start(self) -> Continuity:
        try:
            self.site = Site(self.tmp)
            settle = self._act(self.site)
        except BaseException as exc:  # reported by timeline(), to this module's tests
            self.error = exc
            return self
        self._thread = threading.Thread(target=settle, name="continuity", daemon=True)
        self._thread.start()
        return self

    def _act(self, site: Site) -> Callable[[], None]:
        t = self.t
        a = site.server("A", "10.78.0.2")
        # Every role once per client: kept running throughout, rebooted after the
        # takeover and again after a new placement, renumbered.
        roles = ["running", "reboot", "renumber"]
        for i, (role, kind) in enumerate((r, k) for r in roles for k in CLIENTS):
            t.vms[f"{role}-{kind}"] = site.vm(kind, i + 1)
        b, c = site.server("B", "10.78.0.3"), site.server("C", "10.78.0.4")
        t.ips = {s.name: s.ip for s in (a, b, c)}
        a.serve()
        for vmc in t.vms.values():
            vmc.first = vmc.client.wait_bound(vmc.client.start(), 15)
        running = {
            v.vm.ns: (v.vm.ns, v.first.ip) for k, v in t.vms.items() if k.startswith("running")
        }
        watch = AddressWatch(running, interval=0.1).start()
        try:
            # A dies; B takes over with a fresh dnsmasq holding no lease.
            a.kill()
            t.killed_at = time.time()
            b.serve()
            for kind in CLIENTS:
                t.reboots[kind], t.reboot_s[kind] = _reboot(t.vms[f"reboot-{kind}"])

            # A port's IP changes while its VM holds the old one; the VM reboots.
            for kind in CLIENTS:
                vmc = t.vms[f"renumber-{kind}"]
                n = int(vmc.port.mac_address.split(":")[-1], 16)
                vmc.port = site.renumber(vmc.port, f"10.78.0.{100 + n}")
                assert b.served.update_ports([vmc.port])
                t.renumbered[kind], t.renumber_s[kind] = _reboot(vmc)

            # HA count raised: C is newly placed, with no lease; the rebooted VMs reboot
            # again.
            c.serve()
            for kind in CLIENTS:
                t.new_server_reboots[kind], _ = _reboot(t.vms[f"reboot-{kind}"])

            # B's dnsmasq dies and its lease file is lost; the agent respawns it.
            pid = b.served.process.pid
            os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
            wait_for(lambda: not b.served.process.alive(), 5, "B's dnsmasq to die")
            b.served.paths.leases.unlink()
            assert wait_for(lambda: b.served.check(), 5, "B's dnsmasq respawned") is not None
            assert b.served.process.pid != pid
        except BaseException:
            watch.stop()
            raise
        respawned_at = len(b.log())
        waiting_since = time.monotonic()

        # Every client renews (unicast to B or C) or rebinds (broadcast, A being
        # dead) before its lease ends: wait until each has, past dhclient's T2.
        def renewed_all() -> bool:
            if self._closing.is_set():
                raise RuntimeError("the world was closed while its clients were waited for")
            return all(
                any(e.name in RENEWED for e in v.client.events(t.killed_at)) for v in t.vms.values()
            )

        def settle() -> None:
            try:
                left = LEASE + 15 - (time.monotonic() - waiting_since)
                wait_for(renewed_all, left, "every client to renew or rebind", interval=0.5)
                watch.stop()
                t.gaps = {ns: watch.longest_gap(ns) for ns in running}
                t.logs = {s.name: s.log() for s in (a, b, c)}
                t.logs["B respawned"] = t.logs["B"][respawned_at:]
                for name, vmc in t.vms.items():
                    t.events[name] = vmc.client.events(t.killed_at)
                    t.outputs[name] = vmc.client.output.read_text()
            except BaseException as exc:
                self.error = exc
            finally:
                watch.stop()

        return settle

    def timeline(self) -> Timeline:
        """The timeline once every client has renewed or rebound (or the error that
        came instead)."""
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error
        return self.t

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
        if self.site is not None:
            self.site.close()


#: The world start_early started, until this module's fixture takes it.
_started: list[Continuity] = []


def start_early(tmp_path_factory: pytest.TempPathFactory) -> Continuity:
    """Start the world (conftest's _started_early calls this before the session's first
    test when one of this module's tests is selected); whoever ends first, this module's
    fixture or the session, closes it."""
    world = Continuity(tmp_path_factory.mktemp("continuity")).start()
    _started.append(world)
    return world


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Timeline]:
    world = _started.pop() if _started else start_early(tmp_path_factory)
    try:
        yield world.timeline()
    finally:
        world.close()


def _events_after_kill(t: Timeline, name: str) -> list[Event]:
    """The client's events from A's death until every client had renewed or rebound."""
    return t.events[name]


@pytest.mark.parametrize("kind", CLIENTS)
def test_running_client_keeps_its_address_across_takeover_and_lost_leases(
    timeline: Timeline, kind: str
) -> None:
    vmc = timeline.vms[f"running-{kind}"]
    assert vmc.first is not None and vmc.first.server == timeline.ips["A"]
    events = _events_after_kill(timeline, f"running-{kind}")
    assert not [e for e in events if e.name in LOST], events  # no EXPIRE, no deconfig
    assert timeline.gaps[vmc.vm.ns] == 0.0  # eth0 never lacked its address
    answered = [e for e in events if e.name in RENEWED]
    assert answered and answered[0].ip == vmc.first.ip
    assert answered[0].server in (timeline.ips["B"], timeline.ips["C"])


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_respawned_server_without_its_lease_file_answers_the_rebind(
    timeline: Timeline, kind: str
) -> None:
    """The running clients rebound by broadcast after B lost its leases: B answered
    them (as did C, newly placed: the client took whichever came first)."""
    mac = timeline.vms[f"running-{kind}"].port.mac_address
    for log in (timeline.logs["B respawned"], timeline.logs["C"]):
        assert any("DHCPACK" in line and mac in line for line in log.splitlines())


@pytest.mark.parametrize("kind", CLIENTS)
def test_reboot_after_takeover_is_bound_at_once_by_the_new_server(
    timeline: Timeline, kind: str
) -> None:
    vmc = timeline.vms[f"reboot-{kind}"]
    got = timeline.reboots[kind]
    assert got.ip == vmc.first.ip and got.server == timeline.ips["B"]  # type: ignore[union-attr]
    assert timeline.reboot_s[kind] < 1.0, timeline.reboot_s
    if kind == "dhclient":
        assert got.name == "reboot"  # INIT-REBOOT answered, no fallback to DISCOVER


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_new_server_answers_clients_it_has_no_lease_for(timeline: Timeline, kind: str) -> None:
    vmc = timeline.vms[f"reboot-{kind}"]
    assert timeline.new_server_reboots[kind].ip == vmc.first.ip  # type: ignore[union-attr]
    # Both B and C answered the reboot (broadcast): C, new, held no lease for it.
    acks = [line for line in timeline.logs["C"].splitlines() if vmc.port.mac_address in line]
    assert any("DHCPACK" in line or "DHCPOFFER" in line for line in acks), acks


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_request_for_an_old_ip_is_refused_and_the_new_one_given(
    timeline: Timeline, kind: str
) -> None:
    vmc = timeline.vms[f"renumber-{kind}"]
    new_ip = vmc.port.fixed_ips[0].ip_address
    got = timeline.renumbered[kind]
    assert got.ip == new_ip and vmc.first.ip != new_ip  # type: ignore[union-attr]
    assert timeline.renumber_s[kind] < 2.0, timeline.renumber_s
    if kind == "dhclient":  # its INIT-REBOOT for the old IP was NAKed, not ignored
        nak = "DHCPNAK(" in timeline.logs["B"] and vmc.port.mac_address in timeline.logs["B"]
        assert nak and "DHCPNAK from" in timeline.outputs[f"renumber-{kind}"]


def test_no_server_naks_a_request_that_selects_another(timeline: Timeline) -> None:
    """Authoritative servers of one network ignore requests addressed to a peer."""
    for name in ("B", "C"):
        assert "wrong server-ID" not in timeline.logs[name]
        naks = [line for line in timeline.logs[name].splitlines() if "DHCPNAK" in line]
        renumbered = {timeline.vms[f"renumber-{k}"].port.mac_address for k in CLIENTS}
        assert all(any(mac in line for mac in renumbered) for line in naks), naks
