"""dnsmasq's configuration and host entries for one served network, from the
engine's state (ipam.bus.contracts). Only ids and validated addresses reach them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ipam.bus.contracts import LEASE_TIME_INFINITE, NetworkState, PortState, SubnetState

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


_DEFAULT_ROUTE = ipaddress.IPv4Network("0.0.0.0/0")


#: Seconds at least between T2 (rebind by broadcast) and the lease's end. ISC
#: dhclient renews by unicast from T1 with retries up to 22.5 s apart (1.5 x its
#: backoff-cutoff of 15 s) and broadcasts only at the first retry after T2: with
#: dnsmasq's default T2 (7/8 of the lease) a 120 s lease leaves 15 s, and a client
#: whose server died can miss that window and lose its address (measured: 3 of 50).
REBIND_WINDOW = 30


def rebind_time(lease_time: int) -> int | None:
    """T2 for this lease time (None: dnsmasq's default, for an infinite lease)."""
    if lease_time == LEASE_TIME_INFINITE:
        return None
    return lease_time - max(lease_time // 8, REBIND_WINDOW)


def lease_time_text(seconds: int) -> str:
    """dnsmasq's dhcp-range lease time: seconds, or ``infinite``."""
    return "infinite" if seconds == LEASE_TIME_INFINITE else f"{seconds}s"


def routes_and_gateway(subnet: SubnetState) -> tuple[list[str], str | None]:
    """Option 121's (destination, nexthop) pairs and the router, by Neutron's rule.

    A ``0.0.0.0/0`` host route never becomes a second default route: the
    subnet's gateway wins, and only without one is the route's nexthop the
    router. Clients ignore option 3 when option 121 is present (RFC 3442), so a
    gateway is then also the last route of option 121.
    """
    gateway, routes = subnet.gateway_ip, []
    for r in subnet.host_routes:
        if ipaddress.IPv4Network(r.destination) == _DEFAULT_ROUTE:
            gateway = gateway or str(ipaddress.IPv4Address(r.nexthop))
        else:
            routes += [
                str(ipaddress.IPv4Network(r.destination)),
                str(ipaddress.IPv4Address(r.nexthop)),
            ]
    if routes and gateway:
        routes += [str(_DEFAULT_ROUTE), gateway]
    return routes, gateway


def render(state: NetworkState, paths: Paths, interface: str, lease_time: int) -> str:
    """dnsmasq.conf for this network; lease_time is the agent's default, used when
    the network sets none."""
    subnets, lease_max = [], 0
    for i, s in enumerate(sorted((s for s in state.subnets if s.enable_dhcp), key=lambda s: s.id)):
        net = ipaddress.IPv4Network(s.cidr)
        lease_max += net.num_addresses
        routes, gateway = routes_and_gateway(s)
        subnets.append(
            {
                "tag": f"s{i}",
                "network": str(net.network_address),
                "netmask": str(net.netmask),
                "gateway": gateway,
                "dns": [str(ipaddress.IPv4Address(d)) for d in s.dns_nameservers],
                "routes": routes,
            }
        )
    own = state.dhcp_port.fixed_ips if state.dhcp_port is not None else []
    lease = lease_time if state.network.dhcp_lease_time is None else state.network.dhcp_lease_time
    return _ENV.get_template("dnsmasq.conf.j2").render(
        network_id=state.network.id,
        interface=interface,
        hostsdir=paths.hostsdir,
        leasefile=paths.leases,
        lease_max=max(lease_max, 1),
        pidfile=paths.pid,
        logfile=paths.log,
        subnets=subnets,
        lease_time=lease_time_text(lease),
        rebind_time=rebind_time(lease),
        mtu=state.network.mtu,
        own_ips=sorted(str(ipaddress.IPv4Address(f.ip_address)) for f in own),
    )


def host_entry(port: PortState, dhcp_subnets: set[str]) -> str:
    """A port's hostsdir file: one ``MAC,IP`` line per address on a DHCP subnet."""
    lines = [
        f"{port.mac_address},{f.ip_address}" for f in port.fixed_ips if f.subnet_id in dhcp_subnets
    ]
    return "".join(line + "\n" for line in lines)


#: What a deleted port's file says instead of its address: a lease time only. (A
#: tag such as ``set:deleted`` would do too, but dnsmasq 2.90 aborts, SIGABRT, on
#: the next SIGHUP once it has answered a MAC whose hostsdir record carries one.)
TOMBSTONE = "infinite"


def tombstone(mac: str) -> str:
    """Stops serving a MAC at once, without a reload (DESIGN.md, dnsmasq facts).

    The newest record of a MAC wins, and this one has no address: a DISCOVER gets
    no offer, and (dnsmasq being authoritative) a request for the old address is
    NAKed, so a client still holding it lets it go. ``MAC,ignore`` would only
    silence dnsmasq, and the client would keep the address until its lease ends.
    """
    return f"{mac},{TOMBSTONE}\n"


def holds_address(value: str) -> bool:
    """Whether a record's value is an address, not a tombstone (this one, or the
    ``ignore`` written by earlier versions, still found in an adopted hostsdir)."""
    return value not in (TOMBSTONE, "ignore")


def parse_entry(content: str) -> list[tuple[str, str]]:
    """(mac, ip-or-TOMBSTONE) records of a hostsdir file we wrote."""
    out = []
    for line in content.splitlines():
        mac, _, value = line.partition(",")
        if mac and value:
            out.append((mac, value))
    return out
