"""Starting, reconciling and stopping the DHCP agent: through systemd where it runs
(:class:`SystemdService`, the code VDSM's supervdsm runs), otherwise by direct
supervision (a pid file, and psutil to check that the process behind it is really
our agent and not a recycled pid)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import psutil

from vdsm_verb.vdsm_plugin.network import ovirt_ipam_dhcp as core

LOG = logging.getLogger(__name__)
UNIT = core.AGENT_UNIT


# The systemd path is the one VDSM's supervdsm takes too: one implementation.
ServiceError = core.AgentError


class AgentService(Protocol):
    def running(self) -> int | None:
        """The agent's pid when it runs."""

    def start(self) -> None: ...

    def reconcile(self) -> None:
        """Make the running agent re-read the mapping, without interrupting DHCP."""

    def stop(self) -> None: ...


SystemdService = core.SystemdAgent


class DirectService:
    """Runs ``ovirt-ipam dhcp-agent`` detached, remembered by a pid file."""

    def __init__(self, config_files: list[str], pidfile: Path, logfile: Path) -> None:
        self.config_files, self.pidfile, self.logfile = config_files, pidfile, logfile
        self._child: subprocess.Popen | None = None

    def _ours(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
            return (
                proc.status() != psutil.STATUS_ZOMBIE
                and "dhcp-agent" in cmdline
                and all(f in cmdline for f in self.config_files)
            )
        except psutil.Error:
            return False

    def running(self) -> int | None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # reaped: an agent we started has exited
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._ours(pid) else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "ipam.cli.main", "dhcp-agent"]
        for path in self.config_files:
            argv += ["--config-file", path]
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        self._child = proc
        tmp = self.pidfile.with_name("." + self.pidfile.name)
        tmp.write_text(f"{proc.pid}\n")
        os.rename(tmp, self.pidfile)
        LOG.info("Started the DHCP agent pid=%d", proc.pid)

    def reconcile(self) -> None:
        pid = self.running()
        if pid is None:
            raise ServiceError("the DHCP agent is not running")
        os.kill(pid, signal.SIGHUP)

    def stop(self) -> None:
        pid = self.running()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        try:
            if self._child is not None and self._child.pid == pid:
                self._child.wait(30)
            else:
                psutil.Process(pid).wait(30)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
        self.pidfile.unlink(missing_ok=True)
        LOG.info("Stopped the DHCP agent pid=%d", pid)


def systemd_running() -> bool:
    """sd_booted(): systemd is the init system of this machine."""
    return os.path.isdir("/run/systemd/system")
