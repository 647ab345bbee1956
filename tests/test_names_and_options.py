"""What a VM is told beyond its address, with the real parts: a served network's
dnsmasq in its namespace, VMs running busybox udhcpc, ISC dhclient and busybox
nslookup, and an upstream resolver (another dnsmasq) in the fabric. One world is
shared by the module; each test uses ports of its own."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcp_driver import dnsmasq_config as cfg
from dhcp_driver.agent import _gateways
from dhcp_driver.netns import iproute_in
from ipam.bus.contracts import (
    DhcpOpt,
    FixedIp,
    NetworkInfo,
    NetworkState,
    PortState,
    SubnetState,
)
from ipam.lab.harness import stop_process
from ipam.lab.netparts import Vm, in_netns
from tests.test_served_network import CIDR, GATEWAY, World

pytestmark = pytest.mark.root

DOMAIN = "example.org."
#: The subnet's resolver, beyond its gateway: a dnsmasq of the test's in a namespace
#: that is the gateway (10.77.0.1) and holds this address.
UPSTREAM = "192.0.2.53"
OUTSIDE = ("outside.example.test", "192.0.2.77")
V6_CIDR = "fd00:77::/64"


class Names(World):
    """The served network with the DNS service on and a domain, and a resolver."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.v6_subnet = str(uuid.uuid4())
        self.upstream_vm = self.vm("02:aa:00:00:00:53")
        with iproute_in(self.upstream_vm.ns) as ip:
            idx = ip.link_lookup(ifname="eth0")[0]
            ip.addr("add", index=idx, address=GATEWAY, prefixlen=24)
            ip.addr("add", index=idx, address=UPSTREAM, prefixlen=32)
        self.upstream = subprocess.Popen(
            in_netns(
                self.upstream_vm.ns,
                [
                    "dnsmasq",
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--port=53",
                    f"--listen-address={UPSTREAM}",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    f"--host-record={OUTSIDE[0]},{OUTSIDE[1]}",
                    f"--pid-file={tmp / 'upstream.pid'}",
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = self.vm("02:aa:00:00:00:99")  # asks the DHCP port's DNS
        self.ports_now: dict[str, PortState] = {}
        self.client_ip = ""

    def apply(self, dns: bool) -> None:
        """Serve the network with or without DNS (a restart when that changes)."""
        state = self.named_state(dns)
        self.driver.set_gateways(self.net_id, _gateways(state))
        acked = self.served.apply_state(state)
        assert {a.id for a in acked} <= set(self.ports_now)

    def vm_lease(self, vm: Vm) -> dict[str, str] | None:
        return vm.udhcpc(self.tmp)

    def named_state(self, dns: bool = True) -> NetworkState:
        return NetworkState(
            network=NetworkInfo(
                id=self.net_id,
                vdsm_name=self.bridge.name,
                mtu=1450,
                admin_state_up=True,
                revision_number=1,
                dns_domain=DOMAIN,
                dns_service=dns,
            ),
            subnets=[
                SubnetState(
                    id=self.subnet_id,
                    cidr=CIDR,
                    gateway_ip=GATEWAY,
                    enable_dhcp=True,
                    dns_nameservers=[UPSTREAM],
                    host_routes=[],
                    revision_number=1,
                ),
                SubnetState(
                    id=self.v6_subnet,
                    cidr=V6_CIDR,
                    gateway_ip=None,
                    enable_dhcp=False,
                    dns_nameservers=[],
                    host_routes=[],
                    revision_number=1,
                    ip_version=6,
                ),
            ],
            ports=[*self.ports_now.values(), self.dhcp_port],
            dhcp_port=self.dhcp_port,
        )

    def named(
        self,
        mac: str,
        ip: str,
        name: str | None,
        opts: list[DhcpOpt] | None = None,
        rev: int = 1,
        port_id: str | None = None,
        ip6: str | None = None,
    ) -> PortState:
        fixed = [FixedIp(subnet_id=self.subnet_id, ip_address=ip)]
        if ip6:
            fixed.append(FixedIp(subnet_id=self.v6_subnet, ip_address=ip6))
        port = PortState(
            id=port_id or str(uuid.uuid4()),
            network_id=self.net_id,
            mac_address=mac,
            fixed_ips=fixed,
            revision_number=rev,
            device_owner="oVirt",
            admin_state_up=True,
            dns_name=name,
            extra_dhcp_opts=opts or [],
        )
        return port

    def update(self, port: PortState) -> None:
        """The port, created or changed, acknowledged only once dnsmasq has it all."""
        self.ports_now[port.id] = port
        acks = self.served.update_ports([port])
        assert [(a.id, a.revision_number) for a in acks] == [(port.id, port.revision_number)]

    def close(self) -> None:
        stop_process(self.upstream, 5)
        super().close()


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Names]:
    w = Names(tmp_path_factory.mktemp("names"))
    try:
        client = w.named(w.client.mac, "10.77.0.30", None)
        w.ports_now[client.id] = client
        w.apply(True)
        lease = w.client.udhcpc(w.tmp, configure=True)
        assert lease is not None
        w.client_ip = lease["ip"]
        yield w
    finally:
        w.close()


def lookup(vm: Vm, query: str, qtype: str = "") -> tuple[list[str], list[str]]:
    """busybox nslookup against the DHCP port: (addresses, PTR names) answered."""
    argv = ["busybox", "nslookup", *([f"-type={qtype}"] if qtype else []), query, "10.77.0.2"]
    out = subprocess.run(in_netns(vm.ns, argv), capture_output=True, text=True, timeout=30).stdout
    answers = out.split("\n\n", 1)[1] if "\n\n" in out else ""
    addresses = re.findall(r"^Address: (\S+)$", answers, re.M)
    return addresses, re.findall(r"name = (\S+)", answers)


@pytest.mark.parametrize("dns", [False, True], ids=["dhcp-only", "with-dns"])
def test_dhcp_clients_get_the_hostname_and_domain_and_a_rename(names: Names, dns: bool) -> None:
    """Option 12 comes from the port's opts.d line; with the DNS service dnsmasq would
    also take it from dns.d, so both configurations are checked."""
    names.apply(dns)
    vm = names.vm(f"02:00:00:00:16:0{int(dns)}")
    port = names.named(vm.mac, f"10.77.0.4{int(dns)}", "web-1")
    names.update(port)
    for lease in (names.vm_lease(vm), vm.dhclient(names.tmp)):
        assert lease is not None
        assert (lease["ip"], lease["hostname"], lease["domain"]) == (
            port.fixed_ips[0].ip_address,
            "web-1",
            "example.org",
        )
        # With the DNS service, VMs are told the DHCP port (which forwards the rest).
        assert lease["dns"] == ("10.77.0.2" if dns else UPSTREAM)
    renamed = port.model_copy(update={"dns_name": "web-2", "revision_number": 2})
    names.update(renamed)
    lease = names.vm_lease(vm)
    assert lease is not None and lease["hostname"] == "web-2"
    # Without a name, no hostname, and what the client calls itself is ignored.
    names.update(renamed.model_copy(update={"dns_name": None, "revision_number": 3}))
    lease = vm.udhcpc(names.tmp, args=["-x", "hostname:intruder"])
    assert lease is not None and lease["ip"] == port.fixed_ips[0].ip_address
    assert "hostname" not in lease
    if dns:
        assert lookup(names.client, "intruder.example.org") == ([], [])


def test_dns_answers_the_networks_names_and_forwards_the_rest(names: Names) -> None:
    names.apply(True)
    peer = names.named("02:00:00:00:16:02", "10.77.0.32", "db", ip6="fd00:77::32")
    names.update(peer)
    assert lookup(names.client, "db.example.org") == (["10.77.0.32", "fd00:77::32"], [])
    assert lookup(names.client, "10.77.0.32") == ([], ["db.example.org"])
    assert lookup(names.client, OUTSIDE[0], "A") == ([OUTSIDE[1]], [])
    # A name of the network's domain that no port has is not forwarded: NXDOMAIN.
    assert lookup(names.client, "nobody.example.org") == ([], [])
    # A rename replaces the records at once (dnsmasq drops a changed file's names).
    names.update(peer.model_copy(update={"dns_name": "db-new", "revision_number": 2}))
    assert lookup(names.client, "db-new.example.org", "A") == (["10.77.0.32"], [])
    assert lookup(names.client, "db.example.org") == ([], [])
    assert lookup(names.client, "10.77.0.32") == ([], ["db-new.example.org"])
    # A deleted port's names go with it.
    names.served.delete_port(peer.model_copy(update={"revision_number": 3}))
    names.ports_now.pop(peer.id)
    assert lookup(names.client, "db-new.example.org") == ([], [])


def test_boot_options_follow_what_the_client_says_it_is(names: Names) -> None:
    names.apply(True)
    vm = names.vm("02:00:00:00:16:03")
    opts = [
        DhcpOpt(opt_name="bootfile-name", opt_value="pxelinux.0"),
        DhcpOpt(opt_name="tftp-server", opt_value="10.77.0.9"),
        DhcpOpt(opt_name="server-ip-address", opt_value="10.77.0.9"),
        DhcpOpt(opt_name="ipxe-bootfile-name", opt_value="http://10.77.0.9/boot.ipxe"),
        DhcpOpt(opt_name="http-boot-url", opt_value="http://10.77.0.9/efi/grubx64.efi"),
        DhcpOpt(opt_name="ntp-server", opt_value="10.77.0.10,10.77.0.11"),
        DhcpOpt(opt_name="domain-search", opt_value="example.org,example.net"),
    ]
    port = names.named(vm.mac, "10.77.0.33", "pxe", opts)
    names.update(port)
    ask = ["-O", "66", "-O", "67", "-O", "ntpsrv", "-O", "search"]
    lease = vm.udhcpc(names.tmp, args=ask)
    assert lease is not None
    assert (lease["bootfile"], lease["tftp"], lease["siaddr"]) == (
        "pxelinux.0",
        "10.77.0.9",
        "10.77.0.9",
    )
    assert lease["ntpsrv"] == "10.77.0.10 10.77.0.11"
    assert lease["search"] == "example.org example.net"
    # iPXE says so by its user class (77: "iPXE"); UEFI HTTP boot by its vendor class.
    ipxe = vm.udhcpc(names.tmp, args=[*ask, "-x", "0x4d:69505845"])
    assert ipxe is not None and ipxe["bootfile"] == "http://10.77.0.9/boot.ipxe"
    http = vm.udhcpc(names.tmp, args=[*ask, "-V", "HTTPClient:Arch:00016:UNDI:003001"])
    assert http is not None and http["bootfile"] == "http://10.77.0.9/efi/grubx64.efi"
    # Asked for nothing: the boot file still reaches the BOOTP file field.
    plain = vm.udhcpc(names.tmp)
    assert plain is not None and plain.get("boot_file") == "pxelinux.0"
    # An option taken away is gone (a reload: dnsmasq never forgets an option it read).
    names.update(port.model_copy(update={"extra_dhcp_opts": opts[1:2], "revision_number": 2}))
    lease = vm.udhcpc(names.tmp, args=ask)
    assert lease is not None and lease["tftp"] == "10.77.0.9"
    assert "bootfile" not in lease and "ntpsrv" not in lease and not lease.get("boot_file")
    # ... and the ports it served before the reload are still served.
    again = names.vm_lease(names.client)
    assert again is not None and again["ip"] == names.client_ip


def default_routes(names: Names) -> list[str]:
    with iproute_in(names.driver.namespace_name(names.net_id)) as ip:
        return [r.get_attr("RTA_GATEWAY") for r in ip.route("dump", family=2) if r["dst_len"] == 0]


def test_the_namespace_routes_only_with_the_dns_service(names: Names) -> None:
    """The resolver is beyond the gateway: the namespace needs a default route for it,
    and has none without the DNS service."""
    names.apply(True)
    assert default_routes(names) == [GATEWAY]
    names.apply(False)
    assert default_routes(names) == []
    names.apply(True)
    assert default_routes(names) == [GATEWAY]
    assert lookup(names.client, OUTSIDE[0], "A") == ([OUTSIDE[1]], [])


def test_files_hold_only_checked_values(names: Names) -> None:
    port = names.named(
        "02:00:00:00:16:04",
        "10.77.0.34",
        "files",
        [DhcpOpt(opt_name="ntp-server", opt_value="fd00::1", ip_version=6)],
        ip6="fd00:77::34",
    )
    assert cfg.opts_entry(port) == (
        f"tag:port-{port.id},12,files\ntag:port-{port.id},option6:sntp-server,[fd00::1]\n"
    )
    assert cfg.dns_entry(port, DOMAIN) == (
        "10.77.0.34 files.example.org\nfd00:77::34 files.example.org\n"
    )
    assert cfg.dns_entry(port.model_copy(update={"dns_name": None}), DOMAIN) == ""
    assert cfg.dns_entry(port, None) == "10.77.0.34 files\nfd00:77::34 files\n"
    conf = names.served.paths.conf.read_text()
    assert f"server={UPSTREAM}" in conf and "local=/example.org/" in conf
    assert "dhcp-ignore-names" in conf and "domain=example.org\n" in conf
    assert "option:dns-server,10.77.0.2\n" in conf  # the DHCP port, not the upstream


def test_vms_are_told_every_dhcp_port_as_dns_server(names: Names) -> None:
    """A DHCP port of another serving host changes what VMs are told: the agent
    restarts its dnsmasq with both (placement changes are rare), and acknowledges
    nothing it did not hold."""
    names.apply(True)
    other = PortState(
        id=str(uuid.uuid4()),
        network_id=names.net_id,
        mac_address="02:aa:00:00:00:02",
        fixed_ips=[FixedIp(subnet_id=names.subnet_id, ip_address="10.77.0.3")],
        revision_number=1,
        device_owner="network:dhcp",
        admin_state_up=True,
    )
    before = names.served.process.pid
    acks = names.served.update_ports([other])
    assert {a.id for a in acks} <= set(names.ports_now)
    assert names.served.process.pid != before
    lease = names.vm_lease(names.client)
    assert lease is not None and sorted(lease["dns"].split()) == ["10.77.0.2", "10.77.0.3"]
    names.served.apply_state(names.named_state())  # back to the one DHCP port
    lease = names.vm_lease(names.client)
    assert lease is not None and lease["dns"] == "10.77.0.2"
