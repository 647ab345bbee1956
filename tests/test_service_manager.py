"""The agent's service managers. systemd does not run on this machine, so the
systemd path is checked at its seam: a fake ``systemctl`` on PATH records what it
is asked. The direct path is exercised with real processes in test_host_verb."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vdsm_verb.service_manager import UNIT, ServiceError, SystemdService
from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import CLEANUP_UNIT

FAKE = """#!/bin/sh
echo "$@" >> {log}
case "$1" in
  show) cat {pid} 2>/dev/null || echo 0 ;;
  start) echo 4242 > {pid} ;;
  stop) echo 0 > {pid} ;;
  reload) [ "$(cat {pid} 2>/dev/null)" = 4242 ] || {{ echo "not active" >&2; exit 1; }} ;;
esac
"""


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log, pid = tmp_path / "calls", tmp_path / "pid"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(FAKE.format(log=log, pid=pid))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def test_systemd_service_drives_the_shipped_unit(systemctl: Path) -> None:
    service = SystemdService()
    assert service.running() is None
    service.start()
    assert service.running() == 4242
    service.reconcile()
    service.stop()
    assert service.running() is None
    service.cleanup()  # what VDSM's supervdsm runs after stopping it for no networks
    calls = systemctl.read_text().splitlines()
    assert calls == [
        f"show --property=MainPID --value {UNIT}",
        f"start {UNIT}",
        f"show --property=MainPID --value {UNIT}",
        f"reload {UNIT}",
        f"stop {UNIT}",
        f"show --property=MainPID --value {UNIT}",
        f"start {CLEANUP_UNIT}",
    ]


def test_systemd_failure_is_a_clear_error(systemctl: Path) -> None:
    with pytest.raises(ServiceError, match=f"systemctl reload {UNIT} failed: not active"):
        SystemdService().reconcile()
