"""The process harness of the tests, the benchmarks (bench/) and the lab: a free port,
an engine's configuration, ``ovirt-ipam db upgrade``, throw-away PostgreSQL
databases, a real ``ovirt-ipam engine`` process, a real ``ovirt-ipam dhcp-agent``
process, and ending a child process (a signal, then SIGKILL).

It needs nothing of the test suite, neither its modules nor its test extras, so
``python -m bench.NAME`` runs where only ``pip install -e .`` was done. Every process
it starts is ended by its pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from ipam.lab import processes
from ipam.polling import wait_for

#: The PostgreSQL server the tests and the benchmarks make their databases on.
PG_ADMIN_URL = os.environ.get(
    "OVIRT_IPAM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: ``ovirt-ipam`` as this interpreter runs it.
CLI = [sys.executable, "-m", "ipam.cli.main"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing is bound to (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- ending processes ----------------------------------------------------------------------


def stop_process(
    proc: subprocess.Popen | None, grace: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    """End a child process that still runs: ``sig`` (SIGTERM), then SIGKILL when it has
    not exited ``grace`` seconds later; it is reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def end_pids(pids: list[int], grace: float = 5.0) -> None:
    """End processes that are not children of this one (a dnsmasq an agent started), by
    pid: SIGTERM, SIGKILL for those left after ``grace`` seconds (processes.end)."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    processes.end(procs, grace)


def dnsmasq_pids(marker: str) -> list[int]:
    """dnsmasq processes with ``marker`` (a directory of ours) in their command line."""
    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "dnsmasq" and any(marker in a for a in proc.info["cmdline"] or []):
            pids.append(proc.pid)
    return pids


# -- configurations and databases ------------------------------------------------------------


def write_engine_conf(path: Path, state_path: Path, port: int, extra_conf: str = "") -> Path:
    """An engine's configuration: its state directory, its API port, then ``extra_conf``
    (appended inside [api], right after bind_port, so a bare option belongs to [api])."""
    path.write_text(
        f"[DEFAULT]\nstate_path = {state_path}\n[api]\nbind_port = {port}\n{extra_conf}"
    )
    return path


def database_conf(url: str) -> str:
    """The configuration lines that put the store in the database at ``url``."""
    return f"[database]\nconnection = {url}\n"


class UpgradeFailed(RuntimeError):
    """``ovirt-ipam db upgrade`` exited with an error."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"db upgrade failed ({returncode}): {stderr}")
        self.returncode, self.stderr = returncode, stderr


def db_upgrade(conf: Path, timeout: float = 120) -> None:
    """``ovirt-ipam db upgrade`` for a configuration (PostgreSQL is not auto-initialised);
    UpgradeFailed when it fails."""
    result = subprocess.run(
        [*CLI, "db", "upgrade", "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise UpgradeFailed(result.returncode, result.stderr)


@contextlib.contextmanager
def temp_pg_database(admin_url: str = PG_ADMIN_URL, prefix: str = "ovirt_ipam_b") -> Iterator[str]:
    """A fresh PostgreSQL database, dropped (WITH FORCE) afterwards; yields its URL.
    sqlalchemy's OperationalError when the server cannot be reached."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except BaseException:
        admin.dispose()
        raise
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# -- the engine ----------------------------------------------------------------------------


class EngineProcess:
    """A real ``ovirt-ipam engine`` process on 127.0.0.1, a free port unless ``port`` is
    given; its configuration (write_engine_conf, state in ``state_path`` or tmp/state) is
    ``tmp/engine-PORT.conf``, its output ``tmp/engine-PORT.log``. Ended by its pid.

    ``start()`` only spawns it and ``wait_up()`` waits for its API, so several engines
    can boot in parallel; start_engine() does both.
    """

    def __init__(
        self,
        tmp: Path,
        extra_conf: str = "",
        port: int | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = write_engine_conf(
            tmp / f"engine-{self.port}.conf", state_path or tmp / "state", self.port, extra_conf
        )
        self.log_path = tmp / f"engine-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> EngineProcess:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [*CLI, "engine", "--config-file", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_up(self, timeout: float = 30) -> EngineProcess:
        """Until its API answers; AssertionError (with its log) if it exits first."""
        wait_for(self._up, timeout, f"engine on port {self.port}", interval=0.05)
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"engine exited with {self.proc.returncode}: {self.logs()}")
        try:
            return httpx.get(self.url + "/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def cpu_seconds(self) -> float | None:
        """User+system CPU time the engine process has used so far (Linux /proc), or None."""
        try:
            assert self.proc is not None
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, AssertionError):
            return None

    def logs(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def server_errors(self) -> str:
        """Tracebacks and ERROR lines from the engine log (empty when there are none)."""
        bad = re.compile(r" ERROR | CRITICAL |Traceback|status: 5\d\d ")
        return "\n".join(line for line in self.logs().splitlines() if bad.search(line))

    def stop(self) -> None:
        stop_process(self.proc, 10)


def start_engine(
    tmp: Path,
    extra_conf: str = "",
    port: int | None = None,
    wait: bool = True,
    state_path: Path | None = None,
) -> EngineProcess:
    """An EngineProcess started, and (``wait``) answering."""
    engine = EngineProcess(tmp, extra_conf, port, state_path).start()
    if wait:
        engine.wait_up()
    return engine


@contextlib.contextmanager
def engines_sharing(tmp: Path, extra_conf: str, count: int) -> Iterator[list[EngineProcess]]:
    """``count`` engine processes on the one store ``extra_conf`` names (its schema made by
    db upgrade first), each with a state directory of its own (tmp/state-N), booted in
    parallel; stopped afterwards."""
    db_upgrade(write_engine_conf(tmp / "upgrade.conf", tmp / "state-upgrade", 0, extra_conf))
    engines = [EngineProcess(tmp, extra_conf, state_path=tmp / f"state-{i}") for i in range(count)]
    try:
        for engine in engines:
            engine.start()
        for engine in engines:
            engine.wait_up()
        yield engines
    finally:
        for engine in engines:
            engine.stop()


# -- the DHCP agent ------------------------------------------------------------------------


class AgentProcess:
    """A real ``ovirt-ipam dhcp-agent`` process; ended by its pid.

    Its configuration ``conf`` names its state directory, the bus, its host, the bridge
    mapping file and its namespace prefix; ``options`` are more [dhcp_agent] options,
    ``sections`` whole sections that come before [dhcp_agent]. Its output is appended to
    ``logfile``.
    """

    def __init__(
        self,
        conf: Path,
        state_path: Path,
        logfile: Path,
        transport_url: str,
        host: str,
        mapping: Path,
        prefix: str,
        options: str = "",
        sections: str = "",
    ) -> None:
        self.conf, self.state_path, self.logfile = conf, state_path, logfile
        self.host, self.mapping, self.prefix = host, mapping, prefix
        conf.write_text(
            f"[DEFAULT]\nstate_path = {state_path}\ntransport_url = {transport_url}\n"
            f"{sections}[dhcp_agent]\nhost = {host}\nmapping_file = {mapping}\n"
            f"namespace_prefix = {prefix}\n{options}"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Spawn the agent; returns the monotonic time just before the spawn."""
        with open(self.logfile, "ab") as log:
            started = time.monotonic()
            self.proc = subprocess.Popen(
                [*CLI, "dhcp-agent", "--config-file", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return started

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """``sig`` (SIGTERM), SIGKILL if it still runs 30 s later."""
        stop_process(self.proc, 30, sig)

    def logs(self, tail: int | None = None) -> str:
        """Its log (the last ``tail`` characters of it); empty before it has one."""
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def dnsmasq_pids(self) -> list[int]:
        """dnsmasq processes serving from this agent's state directory."""
        return dnsmasq_pids(f"{self.state_path}/")
