"""Real network parts for the lab and the tests: bridges, VMs as namespaces, DHCP clients.

A VM is a network namespace with one NIC, ``eth0``, whose veth peer sits on a
bridge: in the caller's namespace (tests) or in a lab host's namespace (the lab,
where it is named like libvirt's ``vnetN``). Its DHCP client is a real one,
busybox udhcpc or ISC dhclient, run inside the VM's namespace with nsenter.

Names come from the caller (lab: derived from the lab name and a counter) or are
random; traffic stays on the bridge and in the namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import netns

from dhcp_driver.netns import iproute_in
from ipam.lab.harness import stop_process
from ipam.polling import wait_for

NETNS_DIR = "/run/netns"
#: rtnetlink's protocol of routes the kernel learnt from router advertisements.
RTPROT_RA = 9
MAIN_TABLE = 254


def rand(n: int = 6) -> str:
    return secrets.token_hex(n)[:n]


def random_mac(prefix: str = "02:00:5e") -> str:
    return f"{prefix}:{rand(2)}:{rand(2)}:{rand(2)}"


def new_namespace(name: str) -> None:
    """Create the named network namespace, its loopback up."""
    netns.create(name)
    with iproute_in(name) as ip:
        ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")


def in_netns(namespace: str, argv: list[str]) -> list[str]:
    """argv run inside the named namespace (nsenter: no preexec_fn in a threaded caller)."""
    return ["nsenter", f"--net={NETNS_DIR}/{namespace}", *argv]


class Bridge:
    """A Linux bridge, up, in the caller's namespace or in a named one."""

    def __init__(self, name: str | None = None, namespace: str | None = None) -> None:
        self.name = name or f"tbr{rand()}"
        self.namespace = namespace
        with iproute_in(namespace) as ip:
            ip.link("add", ifname=self.name, kind="bridge")
            idx = ip.link_lookup(ifname=self.name)[0]
            ip.link("set", index=idx, state="up")

    def remove(self) -> None:
        with contextlib.suppress(Exception), iproute_in(self.namespace) as ip:
            idx = ip.link_lookup(ifname=self.name)
            if idx:
                ip.link("del", index=idx[0])


class Vm:
    """A VM: a namespace with one NIC (eth0) whose veth peer is on ``bridge``.

    ``bridge_ns`` names the namespace holding the bridge (None: the caller's);
    ``host_if`` names the veth end on the bridge (default: random).
    """

    def __init__(
        self,
        bridge: str,
        mac: str,
        name: str | None = None,
        bridge_ns: str | None = None,
        host_if: str | None = None,
    ) -> None:
        self.ns = name or f"tvm-{rand(8)}"
        self.host_if = host_if or f"tv{rand(8)}"
        self.bridge_ns = bridge_ns
        self.mac = mac
        new_namespace(self.ns)
        try:
            with iproute_in(bridge_ns) as ip:
                ip.link(
                    "add",
                    ifname=self.host_if,
                    kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": self.ns},
                )
                idx = ip.link_lookup(ifname=self.host_if)[0]
                ip.link("set", index=idx, master=ip.link_lookup(ifname=bridge)[0], state="up")
            self.set_mac(mac)
        except BaseException:
            self.remove()
            raise

    @classmethod
    def attach(cls, ns: str, host_if: str, mac: str, bridge_ns: str | None) -> Vm:
        """The VM of an existing namespace (the lab's record of it)."""
        vm = cls.__new__(cls)
        vm.ns, vm.host_if, vm.mac, vm.bridge_ns = ns, host_if, mac, bridge_ns
        return vm

    def set_mac(self, mac: str) -> None:
        """Give eth0 this MAC and bring it up (a VM's NIC as it boots)."""
        self.mac = mac
        with iproute_in(self.ns) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            ns.link("set", index=idx, state="down")
            ns.link("set", index=idx, address=mac)
            ns.link("set", index=idx, state="up")

    def _run(self, argv: list[str], **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(in_netns(self.ns, argv), **kw)

    def udhcpc(
        self,
        workdir: Path,
        tries: int = 3,
        timeout: int = 2,
        configure: bool = False,
        args: Sequence[str] = (),
    ) -> dict[str, str] | None:
        """busybox udhcpc: DISCOVER ``tries`` times, ``timeout`` s apart; the lease or None.

        ``configure``: also put the leased address on eth0, so VMs can reach each other.
        ``args``: more of udhcpc's (``-O 67``, ``-V HTTPClient``, ``-x 0x4d:...``).
        """
        out = workdir / f"udhcpc-{rand()}.env"
        script = workdir / f"udhcpc-{rand()}.sh"
        setup = 'busybox ifconfig "$interface" "$ip" netmask "$subnet" up\n' if configure else ""
        script.write_text(
            '#!/bin/sh\n[ "$1" = bound ] || [ "$1" = renew ] || exit 0\n'
            f"{setup}"
            "env | grep -E '^(ip|router|dns|mtu|subnet|serverid|lease|staticroutes|hostname|"
            "domain|boot_file|bootfile|tftp|siaddr|ntpsrv|search)=' "
            f"> {out}\n"
        )
        script.chmod(0o755)
        proc = self._run(
            [
                "busybox",
                "udhcpc",
                "-f",
                "-q",
                "-n",
                "-t",
                str(tries),
                "-T",
                str(timeout),
                "-i",
                "eth0",
                "-s",
                str(script),
                "-O",
                "mtu",
                "-O",
                "staticroutes",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        proc.communicate(timeout=tries * timeout + 10)
        try:
            return _env(out)
        finally:
            script.unlink(missing_ok=True)
            out.unlink(missing_ok=True)

    def arm_udhcpc(self, workdir: Path, tries: int = 1, timeout: int = 1) -> Armed:
        """A udhcpc already started in the VM, blocked until fire(): then it sends its
        DISCOVER within about a millisecond, as a VM booting at once would."""
        out = workdir / f"udhcpc-{rand()}.env"
        script = workdir / f"udhcpc-{rand()}.sh"
        script.write_text(
            '#!/bin/sh\n[ "$1" = bound ] || exit 0\n'
            f"env | grep -E '^(ip|router|dns|mtu)=' > {out}\n"
        )
        script.chmod(0o755)
        cmd = f"read go && exec busybox udhcpc -f -q -n -t {tries} -T {timeout} -i eth0 -s {script}"
        proc = self._run(
            ["sh", "-c", cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return Armed(proc, out, tries * timeout + 10)

    def dhclient(
        self, workdir: Path, timeout: int = 10, configure: bool = False
    ) -> dict[str, str] | None:
        """ISC dhclient in the foreground; the lease it got, or None after timeout.

        ``configure``: also put the leased address on eth0.
        """
        tag = rand()
        out, script = workdir / f"dhclient-{tag}.env", workdir / f"dhclient-{tag}.sh"
        conf = workdir / f"dhclient-{tag}.conf"
        conf.write_text(
            "request subnet-mask, broadcast-address, routers, domain-name-servers, "
            "interface-mtu, host-name, domain-name;\n"
        )
        setup = (
            "busybox ifconfig $interface $new_ip_address netmask $new_subnet_mask up\n"
            if configure
            else ""
        )
        script.write_text(
            '#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBIND|REBOOT)\n'
            f"{setup}"
            f"echo ip=$new_ip_address > {out}.tmp; echo router=$new_routers >> {out}.tmp\n"
            f"echo dns=$new_domain_name_servers >> {out}.tmp\n"
            f"echo mtu=$new_interface_mtu >> {out}.tmp\n"
            f"echo hostname=$new_host_name >> {out}.tmp\n"
            f"echo domain=$new_domain_name >> {out}.tmp\n"
            f"echo serverid=$new_dhcp_server_identifier >> {out}.tmp\n"
            f"echo subnet=$new_subnet_mask >> {out}.tmp; mv {out}.tmp {out};;\nesac\n"
        )
        script.chmod(0o755)
        files = [out, script, conf, *(workdir / f"dhclient-{tag}.{x}" for x in ("leases", "pid"))]
        proc = self._run(
            [
                "dhclient",
                "-d",
                "-1",
                "-cf",
                str(conf),
                "-sf",
                str(script),
                "-lf",
                str(workdir / f"dhclient-{tag}.leases"),
                "-pf",
                str(workdir / f"dhclient-{tag}.pid"),
                "eth0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return _result_of(proc, out, files, timeout)

    def sysctl(self, **settings: str | int) -> None:
        """net.ipv6.conf settings of eth0 and ``all`` in the VM (``accept_dad=0``...)."""
        argv = ["sysctl", "-qw"]
        for key, value in settings.items():
            argv += [f"net.ipv6.conf.{dev}.{key}={value}" for dev in ("all", "eth0")]
        subprocess.run(in_netns(self.ns, argv), check=True, timeout=10)

    def ipv6_up(self, accept_ra: bool = False) -> None:
        """Bring eth0 up for IPv6 without duplicate address detection, so its link-local
        address is usable at once (ISC dhclient -6 exits while it is tentative), and
        with the kernel's SLAAC (EUI-64) from router advertisements when accept_ra."""
        self.sysctl(accept_dad=0, accept_ra=int(accept_ra), autoconf=int(accept_ra))
        self.set_mac(self.mac)

    def addresses6(self) -> set[str]:
        """eth0's global IPv6 addresses (without prefix length)."""
        with iproute_in(self.ns) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            return {
                m.get("IFA_ADDRESS")
                for m in ns.addr("dump", family=socket.AF_INET6, index=idx)
                if m["index"] == idx and m["scope"] == 0
            }

    def ra_routes(self) -> set[str]:
        """eth0's IPv6 routes learnt from router advertisements: on-link prefixes (which
        expire) and "default" (proto ra). The proof an advertisement arrived."""
        out = set()
        with iproute_in(self.ns) as ns:
            for r in ns.route("dump", family=socket.AF_INET6, table=MAIN_TABLE):
                expires = (r.get("RTA_CACHEINFO") or {}).get("rta_expires", 0)
                if r["proto"] == RTPROT_RA or expires:
                    dst = r.get("RTA_DST")
                    out.add(f"{dst}/{r['dst_len']}" if dst else "default")
        return out

    def ipv6_mtu(self) -> int:
        """eth0's IPv6 MTU (what a router advertisement's MTU option sets)."""
        argv = ["cat", "/proc/sys/net/ipv6/conf/eth0/mtu"]
        return int(subprocess.run(in_netns(self.ns, argv), capture_output=True, check=True).stdout)

    def add_address6(self, address: str) -> None:
        """Put a leased IPv6 address on eth0 (/128: the prefix comes from advertisements)."""
        with iproute_in(self.ns) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            ns.addr("replace", index=idx, address=address, prefixlen=128, family=socket.AF_INET6)

    def udhcpc6(
        self, workdir: Path, binary: str, stateless: bool = False, tries: int = 1, timeout: int = 2
    ) -> dict[str, str] | None:
        """busybox udhcpc6 (``-l``: an information-request only): SOLICIT ``tries``
        times, ``timeout`` s apart; what it got (``ipv6``, ``dns``: canonical) or None.
        Call ipv6_up first."""
        out, script = workdir / f"udhcpc6-{rand()}.env", workdir / f"udhcpc6-{rand()}.sh"
        script.write_text(
            '#!/bin/sh\n[ "$1" = bound ] || [ "$1" = renew ] || exit 0\n'
            f"{{ echo ipv6=$ipv6; echo dns=$dns; echo lease=$lease; }} > {out}\n"
        )
        script.chmod(0o755)
        argv = [binary, "-f", "-q", "-n", "-t", str(tries), "-T", str(timeout), "-i", "eth0"]
        argv += ["-s", str(script), *(["-l"] if stateless else [])]
        proc = self._run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A server's "no addresses available" makes udhcpc6 solicit again and again,
        # whatever -t says: it is given its tries' time, and a second.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(tries * timeout + 1)
        stop_process(proc, 5)
        try:
            env = _env(out)
        finally:
            script.unlink(missing_ok=True)
            out.unlink(missing_ok=True)
        if env is not None:  # udhcpc6 writes addresses in full: 2001:0db8:0000:...
            for key in ("ipv6", "dns"):
                env[key] = " ".join(str(ipaddress.IPv6Address(a)) for a in env[key].split())
        return env

    def dhclient6(
        self, workdir: Path, stateless: bool = False, timeout: float = 10, configure: bool = False
    ) -> dict[str, str] | None:
        """ISC ``dhclient -6`` (``-S``: stateless, options only) in the foreground: what
        it got (``ip6``, ``prefixlen``, ``dns``, ``reason``), or None after timeout.

        Call ipv6_up first. ``configure``: put the leased address on eth0 (/128, as
        a client must: the prefix length comes from router advertisements).
        """
        tag = rand()
        out, script = workdir / f"dhclient6-{tag}.env", workdir / f"dhclient6-{tag}.sh"
        conf = workdir / f"dhclient6-{tag}.conf"
        conf.write_text("request dhcp6.name-servers;\n")
        setup = 'ip -6 addr replace "$new_ip6_address/128" dev "$interface"\n' if configure else ""
        script.write_text(
            '#!/bin/sh\ncase "$reason" in BOUND6|RENEW6|REBIND6|REBOOT6|INFORM6)\n'
            f'[ -z "$new_ip6_address" ] || {{ {setup.strip() or ":"}; }}\n'
            f"echo reason=$reason > {out}.tmp; echo ip6=$new_ip6_address >> {out}.tmp\n"
            f"echo prefixlen=$new_ip6_prefixlen >> {out}.tmp\n"
            f"echo dns=$new_dhcp6_name_servers >> {out}.tmp; mv {out}.tmp {out};;\nesac\n"
        )
        script.chmod(0o755)
        files = [out, script, conf, *(workdir / f"dhclient6-{tag}.{x}" for x in ("leases", "pid"))]
        argv = ["dhclient", "-6", "-d", "-cf", str(conf), "-sf", str(script)]
        argv += ["-lf", str(workdir / f"dhclient6-{tag}.leases")]
        argv += ["-pf", str(workdir / f"dhclient6-{tag}.pid"), *(["-S"] if stateless else [])]
        proc = self._run([*argv, "eth0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return _result_of(proc, out, files, timeout)

    def remove(self) -> None:
        with contextlib.suppress(Exception), iproute_in(self.bridge_ns) as ip:
            idx = ip.link_lookup(ifname=self.host_if)
            if idx:
                ip.link("del", index=idx[0])
        with contextlib.suppress(Exception):
            netns.remove(self.ns)


class Armed:
    def __init__(self, proc: subprocess.Popen, out: Path, timeout: float) -> None:
        self.proc, self.out, self.timeout = proc, out, timeout

    def fire(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    def result(self) -> dict[str, str] | None:
        self.proc.wait(self.timeout)
        return _env(self.out)


def _result_of(
    proc: subprocess.Popen, out: Path, files: list[Path], timeout: float
) -> dict[str, str] | None:
    """What a foreground ISC dhclient's script wrote to ``out`` once it did (or the
    client exited, or timeout passed); the client is ended and ``files`` removed."""
    try:
        wait_for(lambda: out.exists() or proc.poll() is not None, timeout, "a lease", 0.02)
    except TimeoutError:
        pass
    finally:
        stop_process(proc, 5)
    try:
        return _env(out)
    finally:
        for path in files:
            path.unlink(missing_ok=True)


def _env(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value.strip()
    return out


T = TypeVar("T")


def elapsed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
