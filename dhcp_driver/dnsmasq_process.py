"""One dnsmasq process in a network namespace: start, adopt, supervise, signal.

dnsmasq runs in the foreground in its own session, so it outlives an agent that
dies or restarts; a restarted agent adopts it (pid file, verified with psutil
against our configuration path) instead of interrupting DHCP.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import re
import signal
import subprocess
import time

import psutil

from dhcp_driver.dnsmasq_config import Paths

LOG = logging.getLogger(__name__)
NETNS_RUN_DIR = "/run/netns"


def _in_netns(namespace: str) -> list[str]:
    return ["nsenter", f"--net={NETNS_RUN_DIR}/{namespace}", "--"]


class DnsmasqProcess:
    def __init__(self, network_id: str, paths: Paths, namespace: str, binary: str = "dnsmasq"):
        self.network_id, self.paths, self.namespace, self.binary = (
            network_id,
            paths,
            namespace,
            binary,
        )
        self.pid: int | None = None
        self._child: subprocess.Popen | None = None
        self.failures = 0
        self.next_start = 0.0
        self._releasing: list[tuple[str, subprocess.Popen]] = []

    def _ours(self, proc: psutil.Process) -> bool:
        try:
            return (
                proc.status() != psutil.STATUS_ZOMBIE
                and f"--conf-file={self.paths.conf}" in proc.cmdline()
            )
        except psutil.Error:
            return False

    def find_running(self) -> int | None:
        """The pid of a live dnsmasq running our configuration, if any."""
        try:
            pid = int(self.paths.pid.read_text().strip())
            if self._ours(psutil.Process(pid)):
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        if not self.paths.conf.exists():
            return None  # never started here: no need to look through every process
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == "dnsmasq" and self._ours(proc):
                return proc.pid
        return None

    def adopt(self) -> bool:
        pid = self.find_running()
        if pid is None:
            return False
        self.pid, self._child = pid, None
        LOG.info("Adopted dnsmasq pid=%d for network %s", pid, self.network_id)
        return True

    def start(self) -> None:
        ns = self.namespace
        # nsenter (util-linux) enters the namespace and execs dnsmasq: without a Python
        # preexec_fn the (large, threaded) agent is not forked in full.
        # dnsmasq sets umask 022 and creates its lease and log files 0644; made first,
        # 0600, they keep that mode (dnsmasq rewrites them in place).
        for path in (self.paths.leases, self.paths.log):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            os.chmod(path, 0o600)
        err = open(self.paths.base / "dnsmasq.stderr", "ab")  # noqa: SIM115
        try:
            self._child = subprocess.Popen(
                [
                    *_in_netns(ns),
                    self.binary,
                    "--keep-in-foreground",
                    f"--conf-file={self.paths.conf}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            err.close()
        self.pid = self._child.pid
        LOG.info(
            "Started dnsmasq pid=%d for network %s in namespace %s", self.pid, self.network_id, ns
        )

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self._child is not None:
            return self._child.poll() is None
        try:
            return self._ours(psutil.Process(self.pid))
        except psutil.Error:
            return False

    def exit_reason(self) -> str:
        if self._child is not None and self._child.returncode is not None:
            return f"exit code {self._child.returncode}"
        return "gone"

    def signal(self, sig: int) -> bool:
        if not self.alive():
            return False
        assert self.pid is not None
        os.kill(self.pid, sig)
        return True

    def reload(self) -> bool:
        """SIGHUP: dnsmasq re-reads every hostsdir file (costly; see DESIGN.md)."""
        return self.signal(signal.SIGHUP)

    def stop(self, timeout: float = 5.0) -> None:
        self.reap(wait=1.5)
        if not self.alive():
            self.pid = None
            return
        assert self.pid is not None
        pid = self.pid
        os.kill(pid, signal.SIGTERM)
        try:
            if self._child is not None:
                self._child.wait(timeout)
            else:
                psutil.Process(pid).wait(timeout)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            os.kill(pid, signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
        LOG.info("Stopped dnsmasq pid=%d for network %s", pid, self.network_id)
        self.pid, self._child = None, None

    def release(self, interface: str, ip: str, mac: str) -> None:
        """Drop a deleted port's lease (dnsmasq-utils' dhcp_release, in the namespace)."""
        ns = self.namespace
        result = subprocess.run(
            [*_in_netns(ns), "dhcp_release", interface, ip, mac],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if result.returncode != 0:
            LOG.warning(
                "dhcp_release %s %s on network %s failed: %s",
                ip,
                mac,
                self.network_id,
                result.stderr.strip(),
            )

    def release6(self, interface: str, ip: str) -> None:
        """Drop the DHCPv6 lease of a deleted port's address (dnsmasq-utils'
        dhcp_release6, in the namespace), if there is one.

        A tombstone does not take an IPv6 address back (DESIGN.md, dnsmasq facts):
        dnsmasq must be told the lease is released. dhcp_release6 waits a second
        for the answer it asks for, so it runs in the background; the client keeps
        the address until its own lease runs out (DHCPv6 has no NAK).
        """
        self.reap()
        server, leases = read_leases6(self.paths.leases)
        lease = leases.get(str(ipaddress.IPv6Address(ip)))
        if server is None or lease is None:
            return
        iaid, client = lease
        argv = [
            *_in_netns(self.namespace),
            "dhcp_release6",
            "--iface",
            interface,
            "--ip",
            ip,
            "--server-id",
            server,
            "--client-id",
            client,
            "--iaid",
            iaid,
        ]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._releasing.append((ip, proc))

    def reap(self, wait: float = 0.0) -> None:
        """Collect finished dhcp_release6 runs (all of them, waiting up to ``wait``)."""
        deadline = time.monotonic() + wait
        for ip, proc in list(self._releasing):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if wait:
                    proc.kill()
                    proc.wait()
                else:
                    continue
            self._releasing.remove((ip, proc))
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
            if proc.returncode != 0:
                LOG.warning("dhcp_release6 %s on network %s failed: %s", ip, self.network_id, err)

    def backoff(self) -> float:
        """Seconds to wait before the next respawn: 0, then doubling from 0.1 up to 5."""
        delay = 0.0 if self.failures == 0 else min(5.0, 0.1 * 2 ** (self.failures - 1))
        self.failures += 1
        self.next_start = time.monotonic() + delay
        return delay


#: dnsmasq before 2.91 follows freed pointers on SIGHUP once it has answered a client
#: whose dhcp-hostsdir record sets a tag, and aborts (fixed upstream by commit
#: f006be7, "Fix crash when reloading DHCP config on SIGHUP", in 2.91).
SIGHUP_SAFE_WITH_TAGS = (2, 91)


@functools.lru_cache(maxsize=8)
def version(binary: str) -> tuple[int, int]:
    """dnsmasq's version from ``--version`` ((0, 0) when it cannot be read)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = re.search(r"version (\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def read_leases6(path: os.PathLike | str) -> tuple[str | None, dict[str, tuple[str, str]]]:
    """dnsmasq's lease file: its server DUID and, per leased IPv6 address, the lease's
    (IAID, client DUID). IPv6 leases follow a ``duid SERVER`` line, each as
    ``EXPIRY IAID ADDRESS HOSTNAME CLIENT-DUID`` (``T`` before the IAID: a temporary
    address, which we never hand out)."""
    server, out = None, {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if fields[:1] == ["duid"] and len(fields) == 2:
                    server = fields[1]
                elif server is not None and len(fields) == 5 and fields[1].isdigit():
                    with contextlib.suppress(ValueError):
                        out[str(ipaddress.IPv6Address(fields[2]))] = (fields[1], fields[4])
    except FileNotFoundError:
        pass
    return server, out
