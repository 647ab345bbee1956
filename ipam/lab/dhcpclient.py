"""A lab VM's DHCP client that keeps running after its first lease, as a VM's does.

busybox udhcpc (``-f``, no ``-q``) or ISC dhclient (``-d``), started inside the
VM's namespace in a session of its own (it outlives the command that started it;
the lab ends it by pid), with its files in the VM's directory of the lab:

    <lab dir>/vms/<vm>/dhcp-script   the client's script (both clients run it)
                       events        one line per event the client reports
                       client.log    the client's own output (its DISCOVERs)
                       pid           its pid file
                       leases        dhclient's lease file (kept across reboots:
                                     a restarted dhclient does INIT-REBOOT)
                       dhclient.conf

The script does what a real client's script does with eth0: on bound, renew,
rebind and reboot it sets the leased address with the lease's lifetime (so the
kernel too removes it when the lease runs out), dropping any other; on deconfig,
expire, fail, release and stop it removes it. Then it appends
``<unix time> <event> ip=<ip> server=<server id> lease=<seconds> router=<routers>
mtu=<mtu>`` to ``events``.
udhcpc calls a rebind (a broadcast REQUEST at T2) "renew", like a renewal; the
server id tells them apart after a failover.

On a stateful DHCPv6 subnet the VM also runs ``dhclient -6`` (VmClient6), with files
of its own beside these (``dhcp6-script``, ``events6``, ``client6.log``, ``pid6``,
``leases6``, ``dhclient6.conf``): its script puts the leased address on eth0 as /128
(the prefix length is the router advertisements' business) with the lease's
lifetimes, removes it on expire, release and stop, and logs as above, the event's
trailing 6 dropped (``bound``, ``renew``...) and ``dns=`` added. Never Debian's
dhclient-script: it rewrites the machine's /etc/resolv.conf even from a namespace.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from dhcp_driver.netns import iproute_in
from ipam.lab import processes
from ipam.lab.netparts import Vm, in_netns

KINDS = ("udhcpc", "dhclient")
# events after which eth0 carries the lease, and events after which it carries none
CONFIGURED = frozenset({"bound", "renew", "rebind", "reboot", "timeout"})
LOST = frozenset({"deconfig", "expire", "fail", "release", "stop", "nak"})

_SCRIPT = r"""#!/bin/bash
# DHCP client script of a lab VM (ovirt-ipam lab): configures the interface as the
# client says, and logs the event with a wall-clock timestamp.
now=$EPOCHREALTIME
if [ -n "$reason" ]; then  # ISC dhclient
    event=${reason,,}; addr=$new_ip_address; mask=$new_subnet_mask
    server=$new_dhcp_server_identifier; lease=$new_dhcp_lease_time
    router=$new_routers; mtu=$new_interface_mtu
else  # busybox udhcpc
    event=$1; addr=$ip; mask=$subnet; server=$serverid; router=$router; mtu=$mtu
fi
case "$event" in
    bound|renew|rebind|reboot|timeout)
        while read -r _ _ _ have _; do
            [ "${have%/*}" = "$addr" ] || ip -4 addr del "$have" dev "$interface"
        done < <(ip -4 -o addr show dev "$interface")
        ip -4 addr replace "$addr/${mask:-32}" \
            ${lease:+valid_lft $lease preferred_lft $lease} dev "$interface"
        ;;
    deconfig|expire|fail|release|stop)
        ip -4 addr flush dev "$interface"
        ;;
    preinit)
        ip link set dev "$interface" up
        ;;
esac
router=${router// /,}
echo "$now $event ip=$addr server=$server lease=$lease router=$router mtu=$mtu" >> @EVENTS@
exit 0
"""

_SCRIPT6 = r"""#!/bin/bash
# DHCPv6 client script of a lab VM (ovirt-ipam lab, ISC dhclient -6): configures the
# leased address as /128 on the interface, and logs the event with a wall-clock timestamp.
now=$EPOCHREALTIME
event=${reason,,}; event=${event%6}; addr=$new_ip6_address; lease=$new_max_life
case "$reason" in
    BOUND6|RENEW6|REBIND6|REBOOT6)
        if [ -n "$addr" ]; then
            if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$addr" ]; then
                ip -6 addr del "$old_ip6_address/128" dev "$interface"
            fi
            ip -6 addr replace "$addr/128" valid_lft "${new_max_life:-forever}" \
                preferred_lft "${new_preferred_life:-forever}" dev "$interface"
        fi
        ;;
    DEPREF6)
        addr=$cur_ip6_address
        [ -z "$addr" ] || ip -6 addr change "$addr/128" preferred_lft 0 dev "$interface"
        ;;
    EXPIRE6|RELEASE6|STOP6)
        addr=$old_ip6_address
        [ -z "$addr" ] || ip -6 addr del "$addr/128" dev "$interface"
        ;;
    PREINIT6)
        ip link set dev "$interface" up
        ;;
esac
dns=$new_dhcp6_name_servers
echo "$now $event ip=$addr server=$new_dhcp6_server_id lease=$lease dns=${dns// /,}" >> @EVENTS@
exit 0
"""
_DHCLIENT6_CONF = "request dhcp6.name-servers;\n"

_DHCLIENT_CONF = (
    "request subnet-mask, broadcast-address, routers, domain-name-servers, interface-mtu;\n"
)
_DISCOVER = re.compile(r"DHCPDISCOVER|sending discover|broadcasting discover", re.IGNORECASE)


@dataclass(frozen=True)
class Event:
    at: float  # unix time
    name: str
    ip: str
    server: str
    lease: int | None
    router: str = ""  # the routers given, comma-separated
    mtu: str = ""
    dns: str = ""  # the DNS servers given, comma-separated (DHCPv6 events)


def parse_events(text: str) -> list[Event]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            at = float(parts[0])
        except ValueError:
            continue
        kv = dict(p.partition("=")[::2] for p in parts[2:])
        lease = kv.get("lease", "")
        out.append(
            Event(
                at,
                parts[1],
                kv.get("ip", ""),
                kv.get("server", ""),
                int(lease) if lease.isdigit() else None,
                kv.get("router", ""),
                kv.get("mtu", ""),
                kv.get("dns", ""),
            )
        )
    return out


def longest_loss(events: list[Event], until: float, expires: float | None = None) -> float:
    """Seconds of the longest time these events (in order) leave the VM without its
    address, up to ``until``: from an event that removes it, or from the end of the
    lease it held (the kernel removes the address then, its lifetime being the lease's),
    to the next event that sets one. ``expires``: when the lease held before the first
    event runs out."""
    longest, lost_at = 0.0, None
    for e in events:
        if lost_at is None and expires is not None and e.at > expires:
            lost_at = expires
        if e.name in LOST:
            lost_at = e.at if lost_at is None else lost_at
            expires = None
        elif e.name in CONFIGURED and e.ip:
            if lost_at is not None:
                longest, lost_at = max(longest, e.at - lost_at), None
            expires = e.at + e.lease if e.lease else None
    if lost_at is None and expires is not None and until > expires:
        lost_at = expires
    if lost_at is not None:
        longest = max(longest, until - lost_at)
    return longest


class VmClient:
    """The DHCP client of one VM (namespace ``namespace``, NIC eth0), by its directory."""

    def __init__(self, directory: Path, namespace: str, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown DHCP client {kind!r}")
        self.dir, self.ns, self.kind = Path(directory), namespace, kind
        self.events_path = self.dir / "events"
        self.log_path = self.dir / "client.log"
        self.script = self.dir / "dhcp-script"
        self.pid_path = self.dir / "pid"
        self.leases = self.dir / "leases"
        self.conf = self.dir / "dhclient.conf"

    @property
    def mark(self) -> str:
        """In the client's command line (its script's path): tells it from other processes."""
        return f"{self.dir}/"

    def start(self, request_ip: str | None = None) -> int:
        """Start the client; its pid. ``request_ip`` (udhcpc): ask for that address, as
        a rebooting VM does (dhclient asks for the one in its lease file by itself)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.script.exists():
            self.script.write_text(_SCRIPT.replace("@EVENTS@", str(self.events_path)))
            self.script.chmod(0o700)
        if self.kind == "udhcpc":
            argv = ["busybox", "udhcpc", "-f", "-i", "eth0", "-s", str(self.script)]
            argv += ["-p", str(self.pid_path), "-t", "3", "-T", "3", "-A", "20"]
            argv += ["-O", "staticroutes"]  # not mtu: the server sends it unasked
            if request_ip:
                argv += ["-r", request_ip]
        else:
            self.conf.write_text(_DHCLIENT_CONF)
            argv = ["dhclient", "-4", "-d", "-cf", str(self.conf), "-sf", str(self.script)]
            argv += ["-lf", str(self.leases), "-pf", str(self.pid_path), "eth0"]
        return processes.spawn_detached(in_netns(self.ns, argv), self.log_path).pid

    def running(self, pid: int | None) -> bool:
        return processes.is_ours(pid, self.mark)

    def kill(self, pid: int | None) -> None:
        """SIGKILL it (a VM that goes down sends no RELEASE) and wait until it has ended."""
        if not self.running(pid):
            return
        with contextlib.suppress(psutil.Error):
            processes.end([psutil.Process(pid)], grace=0)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def discovers(self, offset: int = 0) -> int:
        """DISCOVERs the client has sent (as its output says) since byte ``offset`` of its log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return 0
        return sum(1 for line in text.splitlines() if _DISCOVER.search(line))

    def events(self, since: float = 0.0) -> list[Event]:
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        return [e for e in parse_events(text) if e.at >= since]

    def configured(self, since: float) -> Event | None:
        """The first event since ``since`` after which eth0 carries a lease."""
        return next((e for e in self.events(since) if e.name in CONFIGURED and e.ip), None)

    def lease(self) -> Event | None:
        """The event of the lease it holds now (the last configuring one, unless it lost it
        since), or None."""
        current = None
        for e in self.events():
            if e.name in CONFIGURED and e.ip:
                current = e
            elif e.name in LOST:
                current = None
        return current


class VmClient6(VmClient):
    """The VM's DHCPv6 client on a stateful subnet: ``dhclient -6`` in the foreground,
    kept running like the IPv4 one (renews, rebinds, a reboot confirms from its lease
    file), beside it in the VM's directory with files of its own."""

    def __init__(self, directory: Path, namespace: str) -> None:
        super().__init__(directory, namespace, "dhclient")
        self.kind = "dhclient6"
        self.events_path = self.dir / "events6"
        self.log_path = self.dir / "client6.log"
        self.script = self.dir / "dhcp6-script"
        self.pid_path = self.dir / "pid6"
        self.leases = self.dir / "leases6"
        self.conf = self.dir / "dhclient6.conf"

    def start(self, request_ip: str | None = None) -> int:
        """Start it (eth0's link-local address must be usable: Vm.ipv6_up); its pid."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.script.exists():
            self.script.write_text(_SCRIPT6.replace("@EVENTS@", str(self.events_path)))
            self.script.chmod(0o700)
        self.conf.write_text(_DHCLIENT6_CONF)
        argv = ["dhclient", "-6", "-d", "-cf", str(self.conf), "-sf", str(self.script)]
        argv += ["-lf", str(self.leases), "-pf", str(self.pid_path), "eth0"]
        return processes.spawn_detached(in_netns(self.ns, argv), self.log_path).pid


def eth0_addresses(namespace: str) -> list[str]:
    """The IPv4 addresses on the VM's eth0 ([] when it or its namespace is gone)."""
    try:
        with iproute_in(namespace) as ip:
            idx = ip.link_lookup(ifname="eth0")
            if not idx:
                return []
            return [a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx[0], family=2)]
    except OSError:
        return []


def eth0_addresses6(namespace: str) -> list[str]:
    """The global IPv6 addresses on the VM's eth0, sorted ([] when it or its namespace
    is gone): what SLAAC or its DHCPv6 client gave it."""
    try:
        return sorted(Vm.attach(namespace, "eth0", "", None).addresses6())
    except (OSError, IndexError):
        return []


def flush_eth0(namespace: str, family: int = socket.AF_INET) -> None:
    """Remove every IPv4 (or global IPv6) address from the VM's eth0 (a VM that reboots
    comes up bare; its IPv6 link-local address is the kernel's own)."""
    with iproute_in(namespace) as ip:
        idx = ip.link_lookup(ifname="eth0")[0]
        for a in ip.get_addr(index=idx, family=family):
            if family == socket.AF_INET or a["scope"] == 0:
                ip.addr(
                    "del",
                    index=idx,
                    address=a.get_attr("IFA_ADDRESS"),
                    prefixlen=a["prefixlen"],
                    family=family,
                )


class AddressWatch:
    """Looks at each VM's eth0 every ``interval`` s in a thread of its own: when did it
    lack its address, and for how long. ``vms`` maps a VM's name to (namespace, address)."""

    def __init__(self, vms: dict[str, tuple[str, str]], interval: float = 0.5) -> None:
        self.vms = vms
        self.interval = interval
        # name -> its gaps: (start, end or None while it lasts)
        self.gaps: dict[str, list[tuple[float, float | None]]] = {name: [] for name in vms}
        self.samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="address-watch", daemon=True)

    def start(self) -> AddressWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            for name, (ns, addr) in self.vms.items():
                has = addr in eth0_addresses(ns)
                now = time.time()
                with self._lock:
                    gaps = self.gaps[name]
                    open_gap = bool(gaps) and gaps[-1][1] is None
                    if not has and not open_gap:
                        gaps.append((now, None))
                    elif has and open_gap:
                        gaps[-1] = (gaps[-1][0], now)
            self.samples += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def lost(self, name: str) -> bool:
        """It lacked its address at some sample."""
        with self._lock:
            return bool(self.gaps[name])

    def missing_now(self, name: str) -> bool:
        with self._lock:
            gaps = self.gaps[name]
            return bool(gaps) and gaps[-1][1] is None

    def longest_gap(self, name: str) -> float:
        """Seconds of its longest time without its address (one still open counts to now)."""
        now = time.time()
        with self._lock:
            return max(((end or now) - start for start, end in self.gaps[name]), default=0.0)
