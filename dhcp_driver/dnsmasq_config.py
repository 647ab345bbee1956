"""dnsmasq's configuration and host entries for one served network, from the
engine's state (ipam.contracts). Only ids and validated addresses reach them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ipam.contracts import NetworkState, PortState

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


@dataclass(frozen=True)
class Paths:
    """Where one network's dnsmasq keeps its files (under the agent's state dir)."""

    base: Path

    @property
    def hostsdir(self) -> Path:
        return self.base / "hosts.d"

    @property
    def conf(self) -> Path:
        return self.base / "dnsmasq.conf"

    @property
    def leases(self) -> Path:
        return self.base / "leases"

    @property
    def pid(self) -> Path:
        return self.base / "dnsmasq.pid"

    @property
    def log(self) -> Path:
        return self.base / "dnsmasq.log"


def dhcp_subnet_ids(state: NetworkState) -> set[str]:
    return {s.id for s in state.subnets if s.enable_dhcp}


def render(state: NetworkState, paths: Paths, interface: str, lease_time: int) -> str:
    subnets, lease_max = [], 0
    for i, s in enumerate(sorted((s for s in state.subnets if s.enable_dhcp), key=lambda s: s.id)):
        net = ipaddress.IPv4Network(s.cidr)
        lease_max += net.num_addresses
        routes = []
        for r in s.host_routes:
            routes += [
                str(ipaddress.IPv4Network(r.destination)),
                str(ipaddress.IPv4Address(r.nexthop)),
            ]
        if routes and s.gateway_ip:
            # Clients ignore option 3 when option 121 is present (RFC 3442).
            routes += ["0.0.0.0/0", s.gateway_ip]
        subnets.append(
            {
                "tag": f"s{i}",
                "network": str(net.network_address),
                "netmask": str(net.netmask),
                "gateway": s.gateway_ip,
                "dns": [str(ipaddress.IPv4Address(d)) for d in s.dns_nameservers],
                "routes": routes,
            }
        )
    return _ENV.get_template("dnsmasq.conf.j2").render(
        network_id=state.network.id,
        interface=interface,
        hostsdir=paths.hostsdir,
        leasefile=paths.leases,
        lease_max=max(lease_max, 1),
        pidfile=paths.pid,
        logfile=paths.log,
        subnets=subnets,
        lease_time=lease_time,
        mtu=state.network.mtu,
    )


def host_entry(port: PortState, dhcp_subnets: set[str]) -> str:
    """A port's hostsdir file: one ``MAC,IP`` line per address on a DHCP subnet."""
    lines = [
        f"{port.mac_address},{f.ip_address}" for f in port.fixed_ips if f.subnet_id in dhcp_subnets
    ]
    return "".join(line + "\n" for line in lines)


def tombstone(mac: str) -> str:
    """Stops serving a MAC at once, without a reload (DESIGN.md, dnsmasq facts)."""
    return f"{mac},ignore\n"


def parse_entry(content: str) -> list[tuple[str, str]]:
    """(mac, ip-or-'ignore') records of a hostsdir file we wrote."""
    out = []
    for line in content.splitlines():
        mac, _, value = line.partition(",")
        if mac and value:
            out.append((mac, value))
    return out
