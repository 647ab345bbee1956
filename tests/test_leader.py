"""One DHCP manager at a time: the leader lock on PostgreSQL and on SQLite, with
real processes holding it and dying."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ipam.db.engine import Database
from ipam.dhcp.leader import LeaderLock
from ipam.polling import wait_for

HOLDER = """
import sys, time
from ipam.db.engine import Database
from ipam.dhcp.leader import LeaderLock
lock = LeaderLock(Database(sys.argv[1]), sys.argv[2])
print("held" if lock.try_acquire() else "refused", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_one_holder_at_a_time_and_a_dead_holders_lock_passes_on(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/s.sqlite"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = LeaderLock(Database(url), str(tmp_path))
        assert mine.try_acquire() is False  # the other engine runs the manager
        holder.send_signal(signal.SIGKILL)  # it dies without releasing anything
        holder.wait(10)
        assert wait_for(mine.try_acquire, 10, "the lock to pass on", interval=0.05)
        assert mine.held()
        again = LeaderLock(
            Database(url), str(tmp_path / "x") if backend == "sqlite" else str(tmp_path)
        )
        if backend == "postgresql":
            assert again.try_acquire() is False
        mine.release()
        if backend == "postgresql":
            assert wait_for(again.try_acquire, 10, "the released lock")
            again.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
