"""dnsmasq's configuration and host entries for one served network, from the
engine's state (ipam.bus.contracts). Only ids and validated addresses reach them."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ipam.bus import dhcp_options
from ipam.bus.contracts import (
    DHCP_OWNER,
    LEASE_TIME_INFINITE,
    MAX_PORTS,
    NetworkState,
    PortState,
    SubnetState,
)

LOG = logging.getLogger(__name__)

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
    def optsdir(self) -> Path:
        """Per-port DHCP options (``--dhcp-optsdir``), read by inotify."""
        return self.base / "opts.d"

    @property
    def dnsdir(self) -> Path:
        """Per-port DNS records (``--hostsdir``), read by inotify; a changed or removed
        file's old records are dropped (unlike the two DHCP directories)."""
        return self.base / "dns.d"

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


#: What dnsmasq does for a DHCP-enabled subnet (see ``services``).
DHCP4, DHCP6, INFO6, NONE = "dhcp4", "dhcp6", "info6", "none"


def service(subnet: SubnetState) -> str:
    """DHCP4 (IPv4), DHCP6 (addresses by DHCPv6: Neutron's stateful mode, and what a
    subnet without modes gets), INFO6 (dhcpv6-stateless: options only; the address is
    the client's SLAAC one) or NONE (slaac: nothing by DHCPv6)."""
    if subnet.ip_version == 4:
        return DHCP4
    return {"slaac": NONE, "dhcpv6-stateless": INFO6}.get(subnet.ipv6_address_mode or "", DHCP6)


def services(state: NetworkState) -> dict[str, str]:
    """subnet id -> service, for the network's DHCP-enabled subnets."""
    return {s.id: service(s) for s in state.subnets if s.enable_dhcp}


#: dnsmasq refuses a DHCPv6 range shorter than /64, and advertises /64 prefixes only.
MIN_DHCP6_PREFIX = RA_PREFIX = 64
#: Seconds between unsolicited router advertisements (RFC 4861's default upper bound
#: is 600; clients ask by router solicitation when their link comes up).
RA_INTERVAL = 60
#: Enterprise number of the DUID-EN every server of a network shares (RFC 5612's
#: number for documentation: the DUID only has to be the same on every server).
DUID_ENTERPRISE = 32473


def server_duid(network_id: str) -> str:
    """dnsmasq's ``dhcp-duid`` for a network: the same on every host that serves it,
    so a client's RENEW, which names its server, is answered after a failover."""
    return f"{DUID_ENTERPRISE},{uuid.UUID(network_id).bytes.hex(':')}"


def dhcp6_range(subnet: SubnetState, network_id: str = "") -> tuple[str, bool] | None:
    """(dnsmasq's dhcp-range mode, whether it needs ``enable-ra``), or None for no range.

    Without ``ipv6_ra_mode`` nothing is advertised (the physical network's router does
    it, as with Neutron). ``ra-only`` and ``ra-stateless`` advertise the prefix as
    autonomous (A; O too for stateless); ``static,slaac`` adds A to a DHCPv6 range;
    a plain ``static`` range is advertised (M and O) only with ``enable-ra``, which
    then applies to every static range of the dnsmasq. dnsmasq refuses to start with
    a range shorter than /64, or an advertised one other than /64: such a subnet is
    left out (logged), or served without advertisements.
    """
    kind, ra = service(subnet), subnet.ipv6_ra_mode
    prefixlen = ipaddress.IPv6Network(subnet.cidr).prefixlen
    if kind == NONE and not ra:
        return None
    if prefixlen < MIN_DHCP6_PREFIX or (prefixlen != RA_PREFIX and kind != DHCP6):
        LOG.warning(
            "Network %s: subnet %s is /%d: dnsmasq serves no such IPv6 prefix",
            network_id,
            subnet.id,
            prefixlen,
        )
        return None
    if ra and prefixlen != RA_PREFIX:
        LOG.warning(
            "Network %s: subnet %s is /%d: dnsmasq advertises /%d prefixes only; "
            "serving DHCPv6 without router advertisements",
            network_id,
            subnet.id,
            prefixlen,
            RA_PREFIX,
        )
        ra = None
    if kind == NONE:
        return "ra-only", False
    if kind == INFO6 and ra:
        return "ra-stateless", False
    if ra in ("slaac", "dhcpv6-stateless"):
        return "static,slaac", False
    return "static", ra == "dhcpv6-stateful"


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


def _bracketed(address: str) -> str:
    return f"[{ipaddress.IPv6Address(address)}]"


def render(state: NetworkState, paths: Paths, interface: str, lease_time: int) -> str:
    """dnsmasq.conf for this network; lease_time is the agent's default, used when
    the network sets none."""
    subnets: list[dict[str, Any]] = []
    subnets6: list[dict[str, Any]] = []
    lease_max, enable_ra = 0, False
    dhcp = sorted((s for s in state.subnets if s.enable_dhcp), key=lambda s: s.id)
    for i, s in enumerate(dhcp):
        if s.ip_version == 6:
            net6 = ipaddress.IPv6Network(s.cidr)
            mode = dhcp6_range(s, state.network.id)
            if mode is None:
                continue
            enable_ra |= mode[1]
            lease_max += min(net6.num_addresses, MAX_PORTS)
            subnets6.append(
                {
                    "id": s.id,
                    "tag": f"s{i}",
                    "network": str(net6.network_address),
                    "prefixlen": net6.prefixlen,
                    "mode": mode[0],
                    "ra": "ra-" in mode[0] or "slaac" in mode[0] or mode[1],
                    "dns": [_bracketed(d) for d in s.dns_nameservers],
                }
            )
            continue
        net = ipaddress.IPv4Network(s.cidr)
        lease_max += net.num_addresses
        routes, gateway = routes_and_gateway(s)
        subnets.append(
            {
                "id": s.id,
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
    dns = state.network.dns_service
    upstream: list[str] = []
    if dns:
        # The network's resolvers become dnsmasq's forwarders; VMs are told the DHCP
        # ports' addresses instead (every serving host's, so that one may fail).
        resolvers = dhcp_ports_by_subnet(state)
        for entry in subnets + subnets6:
            upstream += [d.strip("[]") for d in entry["dns"]]
            entry["dns"] = resolvers.get(entry["id"], [])
    return _ENV.get_template("dnsmasq.conf.j2").render(
        network_id=state.network.id,
        interface=interface,
        hostsdir=paths.hostsdir,
        leasefile=paths.leases,
        lease_max=max(lease_max, 1),
        pidfile=paths.pid,
        logfile=paths.log,
        subnets=subnets,
        subnets6=subnets6,
        enable_ra=enable_ra,
        advertises=any(s["ra"] for s in subnets6),
        ra_interval=RA_INTERVAL,
        duid=server_duid(state.network.id),
        lease_time=lease_time_text(lease),
        rebind_time=rebind_time(lease),
        mtu=state.network.mtu,
        own_ips=sorted(
            str(ipaddress.IPv4Address(f.ip_address)) for f in own if ":" not in f.ip_address
        ),
        optsdir=paths.optsdir,
        domain=(state.network.dns_domain or "").rstrip("."),
        dns=dns,
        dnsdir=paths.dnsdir,
        upstream=list(dict.fromkeys(upstream)),
        ipxe_tag=dhcp_options.IPXE_TAG,
        httpboot_tag=dhcp_options.HTTPBOOT_TAG,
    )


def dhcp_ports_by_subnet(state: NetworkState) -> dict[str, list[str]]:
    """subnet id -> the addresses the network's DHCP ports have on it (dnsmasq's
    spelling: IPv6 in brackets), in a stable order."""
    out: dict[str, list[str]] = {}
    ports = [p for p in state.ports if p.device_owner == DHCP_OWNER]
    if state.dhcp_port is not None and state.dhcp_port.id not in {p.id for p in ports}:
        ports.append(state.dhcp_port)
    for port in sorted(ports, key=lambda p: p.id):
        for f in port.fixed_ips:
            text = _bracketed(f.ip_address) if ":" in f.ip_address else f.ip_address
            out.setdefault(f.subnet_id, []).append(text)
    return out


def port_tag(port_id: str) -> str:
    """The dnsmasq tag every record of a port sets, which its options in opts.d match.
    It never changes, so a port's options and name change without touching its
    record (a rewritten record would be rejected for its own address; see
    docs/names-and-options.md)."""
    return f"port-{uuid.UUID(port_id)}"


def host_entry(port: PortState, kinds: dict[str, str]) -> str:
    """A port's hostsdir file: a ``MAC,set:TAG,IP`` line per IPv4 address on a DHCP
    subnet and a ``MAC,set:TAG,[IP]`` line per DHCPv6 address (never both on one line:
    dnsmasq rejects a whole line whose IPv4 address is taken, and its IPv6 address
    with it).

    DHCPv6 knows a client only by a line with an IPv6 address or with none: a port
    whose DHCPv6 service is options only (stateless) gets an address-less line, and
    first, as the last line of a MAC wins for DHCPv4 (docs/ipv6-dataplane.md).
    """
    lines4, lines6, info6 = [], [], False
    head = f"{port.mac_address},set:{port_tag(port.id)}"
    for f in port.fixed_ips:
        kind = kinds.get(f.subnet_id)
        if kind == DHCP4:
            lines4.append(f"{head},{ipaddress.IPv4Address(f.ip_address)}")
        elif kind == DHCP6:
            lines6.append(f"{head},{_bracketed(f.ip_address)}")
        info6 |= kind == INFO6
    known = [f"{head},{TOMBSTONE}"] if info6 and not lines6 else []
    return "".join(line + "\n" for line in known + lines4 + lines6)


#: Option 12 by number (dnsmasq keeps the name ``hostname`` for itself); without a
#: value dnsmasq sends no hostname (it reads an empty hostname, router, DNS or domain
#: option as "do not send", not as empty).
NO_HOSTNAME = "12"


def opts_entry(port: PortState) -> str:
    """A port's opts.d file: its hostname (option 12) and extra_dhcp_opts, each line
    matching the port's tag. A later line wins over an earlier one for the same option
    and tags, so the hostname line is always written: without a name it is the empty
    one, which outranks a name read before."""
    tag = f"tag:{port_tag(port.id)}"
    hostname = f"{NO_HOSTNAME},{port.dns_name}" if port.dns_name else NO_HOSTNAME
    lines = [f"{tag},{hostname}"]
    for opt in port.extra_dhcp_opts:
        spelling = dhcp_options.CATALOG[opt.opt_name][opt.ip_version]
        value = spelling.check(opt.opt_value)
        if spelling.brackets:
            value = ",".join(_bracketed(v) for v in value.split(","))
        tags = "".join(f",tag:{t}" for t in spelling.when)
        lines.append(f"{tag}{tags},{spelling.option},{value}")
    return "".join(line + "\n" for line in lines)


def opts_keys(content: str) -> set[str]:
    """What each line of an opts.d file sets (its tags and option), without the value:
    a key that a file no longer has stays loaded in dnsmasq until a reload."""
    keys = set()
    for line in content.splitlines():
        fields = line.split(",")
        cut = next((i for i, f in enumerate(fields) if not f.startswith("tag:")), len(fields))
        key = ",".join(fields[: cut + 1])
        if key.rpartition(",")[2] != NO_HOSTNAME:
            keys.add(key)
    return keys


def dns_entry(port: PortState, domain: str | None) -> str:
    """A port's dns.d file: ``IP NAME.DOMAIN`` per address (``IP NAME`` without a
    domain; clients append the domain they are told). One name per address: dnsmasq
    scans its whole cache for each name a --hostsdir file adds, so a second name
    would double the cost of every change. Empty for a port without a name."""
    if not port.dns_name:
        return ""
    names = f"{port.dns_name}.{domain.rstrip('.')}" if domain else port.dns_name
    return "".join(f"{ipaddress.ip_address(f.ip_address)} {names}\n" for f in port.fixed_ips)


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


def ipv6_of(value: str) -> str | None:
    """The IPv6 address of a record's value (``[2001:db8::5]``), else None."""
    return value[1:-1] if value.startswith("[") and value.endswith("]") else None


def parse_entry(content: str) -> list[tuple[str, str]]:
    """(mac, ip-or-TOMBSTONE) records of a hostsdir file we wrote (with the port's
    tag, or without as earlier versions wrote them)."""
    out = []
    for line in content.splitlines():
        mac, *fields = line.split(",")
        values = [f for f in fields if not f.startswith(("set:", "tag:"))]
        if mac and values:
            out.append((mac, values[0]))
    return out
