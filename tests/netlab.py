"""Real network parts for tests: a bridge, VM namespaces on it, real DHCP clients.

Everything is named with a random suffix and removed by its owner; traffic stays
on the test bridge and in the test namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

from pyroute2 import IPRoute, NetNS, netns

from ipam.polling import wait_for


def rand(n: int = 6) -> str:
    return secrets.token_hex(n)[:n]


class Bridge:
    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"tbr{rand()}"
        with IPRoute() as ip:
            ip.link("add", ifname=self.name, kind="bridge")
            idx = ip.link_lookup(ifname=self.name)[0]
            ip.link("set", index=idx, state="up")

    def remove(self) -> None:
        with IPRoute() as ip, contextlib.suppress(Exception):
            idx = ip.link_lookup(ifname=self.name)
            if idx:
                ip.link("del", index=idx[0])


class Vm:
    """A VM: a namespace with one NIC (eth0) whose veth peer is on the bridge."""

    def __init__(self, bridge: str, mac: str, name: str | None = None) -> None:
        self.ns = name or f"tvm-{rand(8)}"
        self.host_if = f"tv{rand(8)}"
        self.mac = mac
        netns.create(self.ns)
        with IPRoute() as ip:
            ip.link(
                "add",
                ifname=self.host_if,
                kind="veth",
                peer={"ifname": "eth0", "net_ns_fd": self.ns},
            )
            idx = ip.link_lookup(ifname=self.host_if)[0]
            ip.link("set", index=idx, master=ip.link_lookup(ifname=bridge)[0], state="up")
        self.set_mac(mac)

    def set_mac(self, mac: str) -> None:
        self.mac = mac
        with NetNS(self.ns) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            ns.link("set", index=idx, state="down")
            ns.link("set", index=idx, address=mac)
            ns.link("set", index=idx, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")

    def _run(self, argv: list[str], **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        ns = self.ns
        return subprocess.Popen(argv, preexec_fn=lambda: netns.setns(ns), **kw)

    def udhcpc(self, workdir: Path, tries: int = 3, timeout: int = 2) -> dict[str, str] | None:
        """busybox udhcpc: DISCOVER ``tries`` times, ``timeout`` s apart; the lease or None."""
        out = workdir / f"udhcpc-{rand()}.env"
        script = workdir / f"udhcpc-{rand()}.sh"
        script.write_text(
            '#!/bin/sh\n[ "$1" = bound ] || [ "$1" = renew ] || exit 0\n'
            f"env | grep -E '^(ip|router|dns|mtu|subnet|serverid|lease|staticroutes)=' "
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
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        proc.communicate(timeout=tries * timeout + 10)
        return _env(out)

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

    def dhclient(self, workdir: Path, timeout: int = 10) -> dict[str, str] | None:
        """ISC dhclient in the foreground; the lease it got, or None after timeout."""
        tag = rand()
        out, script = workdir / f"dhclient-{tag}.env", workdir / f"dhclient-{tag}.sh"
        conf = workdir / f"dhclient-{tag}.conf"
        conf.write_text(
            "request subnet-mask, broadcast-address, routers, domain-name-servers, interface-mtu;\n"
        )
        script.write_text(
            '#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBIND|REBOOT)\n'
            f"echo ip=$new_ip_address > {out}.tmp; echo router=$new_routers >> {out}.tmp\n"
            f"echo dns=$new_domain_name_servers >> {out}.tmp\n"
            f"echo mtu=$new_interface_mtu >> {out}.tmp\n"
            f"echo subnet=$new_subnet_mask >> {out}.tmp; mv {out}.tmp {out};;\nesac\n"
        )
        script.chmod(0o755)
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
        try:
            wait_for(
                lambda: out.exists() or proc.poll() is not None,
                timeout,
                "dhclient lease",
                interval=0.05,
            )
        except TimeoutError:
            pass
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return _env(out)

    def remove(self) -> None:
        with IPRoute() as ip, contextlib.suppress(Exception):
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


def _env(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value.strip()
    return out


def elapsed(fn):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
