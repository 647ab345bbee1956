"""bench.scale at a tiny size (10 hosts, 20 networks, 200 ports, the embedded store
and bus), so the benchmark does not rot: it completes, every network ends served
(the benchmark stops with an error otherwise), its figures are printed and sane,
and it leaves neither its engine nor its directory behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil

HOST_DOWN_TIME = 3.0
CREATES = 20
ARGS = [
    "--embedded",
    "--hosts", "10",
    "--networks", "20",
    "--ports", "200",
    "--window", "2",
    "--steps", "5",
    "--creates", str(CREATES),
    "--heartbeat-interval", "1",
    "--host-down-time", str(HOST_DOWN_TIME),
    "--startup-grace", "2",
]  # fmt: skip


def test_scale_tiny() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", *ARGS],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=Path(__file__).resolve().parent.parent,
    )
    out = proc.stdout
    print(out)
    assert proc.returncode == 0, f"{out}\n{proc.stderr[-3000:]}"
    figures = {
        m[1]: float(m[2])
        for m in re.finditer(r"^([a-z0-9_]+): (-?[0-9.]+)(?: \S+)?$", out, re.MULTILINE)
    }
    assert figures["hosts_10h"] == 10
    assert figures["ports_active_10h"] == CREATES  # every create answered ACTIVE
    assert figures["moved_placements_10h"] > 0  # the killed host served something
    assert 0 < figures["failover_s_1_hosts"] <= HOST_DOWN_TIME + 2 + 3  # goal, noise margin
    assert 0 <= figures["failover_after_down_s_10h"] <= 2 + 3
    assert 0 < figures["manager_step_ms_p50"] <= figures["manager_step_ms_p99"] < 1000
    assert 0 < figures["port_ready_p99_ms_under_heartbeats"] < 5000
    # 10 host services and up to 10 agents beating every second.
    assert 8 <= figures["heartbeats_per_s"] <= 25
    assert 30 < figures["engine_rss_mb"] < 2000
    assert figures["engine_errors_10h"] == 0
    assert "| hosts |" in out  # the table of cost against size
    pid = int(re.search(r"engine pid (\d+)", out)[1])  # type: ignore[index]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    workdir = re.search(r"working directory (\S+)", out)[1]  # type: ignore[index]
    assert not Path(workdir).exists()
