"""The lab's processes: started in sessions of their own, found and ended by pid.

A lab process outlives the command that started it (``lab up`` returns, the
engine and host services go on), so each is started in a new session with its
output in a log file. Each carries the lab's directory in its command line, which
is how the lab tells its processes from others and from a reused pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil


def spawn_detached(argv: list[str], logfile: Path) -> subprocess.Popen:
    """Start argv in a session of its own, stdout and stderr appended to logfile."""
    with open(logfile, "ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def is_ours(pid: int | None, mark: str) -> bool:
    """pid runs, and its command line names ``mark`` (so it is ours, not a reuse)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and any(mark in a for a in proc.cmdline())
    except psutil.Error:
        return False


def marked(mark: str) -> list[psutil.Process]:
    """Every process (but this one) whose command line names ``mark``."""
    me = os.getpid()
    return [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if proc.pid != me and any(mark in a for a in proc.info["cmdline"] or [])
    ]


def ended(proc: psutil.Process) -> bool:
    """Gone, or a zombie: dead, only not reaped (a reparented process's zombie waits for
    whatever reaps orphans, which in a container may be nobody)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each has ended or timeout passes; those still running."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not ended(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if not ended(p)]
    return alive


def end(procs: list[psutil.Process], grace: float = 10.0) -> int:
    """SIGTERM them, SIGKILL what is left after ``grace`` seconds (0: SIGKILL at once).
    Returns how many there were."""
    first = signal.SIGTERM if grace else signal.SIGKILL
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(first)
    alive = _wait(procs, grace or 1)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    _wait(alive, 5)
    return len(procs)
