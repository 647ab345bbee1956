"""Helpers shared by the benchmarks and the multi-engine concurrency tests: a real
``ovirt-ipam engine`` process, throw-away PostgreSQL databases, a REST load driver
(threads with keep-alive httpx clients) that also runs in child processes, and
percentiles.
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ipam.polling import wait_for

PG_ADMIN_URL = os.environ.get(
    "OVIRT_IPAM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of values (nan when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


@contextmanager
def temp_pg_database(admin_url: str = PG_ADMIN_URL, prefix: str = "ovirt_ipam_b") -> Iterator[str]:
    """A fresh PostgreSQL database, dropped (WITH FORCE) afterwards; yields its URL."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(admin_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def database_conf(url: str) -> str:
    return f"[database]\nconnection = {url}\n"


def write_conf(path: Path, state_path: Path, port: int, extra_conf: str = "") -> Path:
    path.write_text(
        f"[DEFAULT]\nstate_path = {state_path}\n[api]\nbind_port = {port}\n{extra_conf}"
    )
    return path


def db_upgrade(conf: Path) -> None:
    """``ovirt-ipam db upgrade`` for a configuration (PostgreSQL is not auto-initialised)."""
    result = subprocess.run(
        [sys.executable, "-m", "ipam.cli.main", "db", "upgrade", "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"db upgrade failed ({result.returncode}): {result.stderr}")


class Engine:
    """A real ``ovirt-ipam engine`` process on a free port; ended by its pid.

    ``start()`` only spawns it, ``wait_up()`` waits for the API, so several engines
    can boot in parallel.
    """

    def __init__(self, tmp: Path, extra_conf: str = "", state_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = write_conf(
            tmp / f"engine-{self.port}.conf", state_path or tmp / "state", self.port, extra_conf
        )
        self.log_path = tmp / f"engine-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Engine:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ipam.cli.main", "engine", "--config-file", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_up(self, timeout: float = 30) -> Engine:
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
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def create_network_and_subnet(
    url: str, name: str, cidr: str, subnet_extra: dict[str, Any] | None = None
) -> tuple[str, str]:
    """A network and one subnet through the API; returns their ids."""
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/v2.0/networks", json={"network": {"name": name}})
        r.raise_for_status()
        net_id = r.json()["network"]["id"]
        body = {"network_id": net_id, "cidr": cidr, "ip_version": 4, **(subnet_extra or {})}
        r = client.post("/v2.0/subnets", json={"subnet": body})
        r.raise_for_status()
        return net_id, r.json()["subnet"]["id"]


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    error_types: Counter = field(default_factory=Counter)
    ports: list[dict[str, Any]] = field(default_factory=list)  # (id, mac, ips) of each 201
    failures: list[str] = field(default_factory=list)  # first few unexpected answers
    elapsed: float = 0.0

    def merge(self, other: LoadResult) -> None:
        self.statuses.update(other.statuses)
        self.error_types.update(other.error_types)
        self.ports.extend(other.ports)
        self.failures.extend(other.failures[: max(0, 20 - len(self.failures))])
        self.elapsed = max(self.elapsed, other.elapsed)


def create_ports(
    url: str,
    port_body: dict[str, Any] | list[dict[str, Any]],
    count: int,
    threads: int,
    start: threading.Barrier | None = None,
    timeout: float = 60,
) -> LoadResult:
    """POST ``count`` ports with ``threads`` keep-alive clients; every answer is recorded.

    Each thread opens its client (and connection) first, then all start together;
    elapsed is the wall time from that common start to the last answer. With a list
    of bodies, request j of every thread sends body j (modulo the list's length), so
    the threads contend for the same things at about the same time.
    """
    result = LoadResult()
    lock = threading.Lock()
    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    ready = threading.Barrier(threads + 1)
    go = threading.Event()
    bodies = [{"port": b} for b in (port_body if isinstance(port_body, list) else [port_body])]

    def run(n: int) -> None:
        local = LoadResult()
        try:
            with httpx.Client(base_url=url, timeout=timeout) as client:
                client.get("/")  # open the keep-alive connection before the clock starts
                ready.wait(timeout)
                go.wait(timeout)
                for j in range(n):
                    _post(client, bodies[j % len(bodies)], local)
        except BaseException as exc:
            ready.abort()
            local.statuses["crash"] += 1
            local.failures.append(f"client thread crashed: {exc!r}")
        with lock:
            result.merge(local)

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in shares]
    for w in workers:
        w.start()
    try:
        ready.wait(timeout)  # every thread has its connection open
        if start is not None:
            start.wait(timeout)  # e.g. a multiprocessing barrier across client processes
    finally:
        began = time.perf_counter()
        go.set()
    for w in workers:
        w.join()
    result.elapsed = time.perf_counter() - began
    return result


def _post(client: httpx.Client, body: dict[str, Any], out: LoadResult) -> None:
    try:
        r = client.post("/v2.0/ports", json=body)
    except httpx.HTTPError as exc:
        out.statuses["transport-error"] += 1
        out.failures.append(f"transport error: {exc!r}")
        return
    out.statuses[r.status_code] += 1
    if r.status_code == 201:
        port = r.json()["port"]
        out.ports.append(
            {
                "id": port["id"],
                "mac_address": port["mac_address"],
                "ips": [f["ip_address"] for f in port["fixed_ips"]],
            }
        )
        return
    try:
        out.error_types[r.json()["NeutronError"]["type"]] += 1
    except (ValueError, KeyError, TypeError):
        out.error_types["?"] += 1
    if r.status_code >= 500 or len(out.failures) < 5:
        out.failures.append(f"{r.status_code} {r.text[:300]}")


def client_process(
    url: str,
    port_body: dict[str, Any] | list[dict[str, Any]],
    count: int,
    threads: int,
    start: Any,
    results: Any,
) -> None:
    """Body of a client process: run create_ports and put the LoadResult on the queue.

    ``start`` is a multiprocessing Barrier shared by the client processes and the parent.
    """
    try:
        res = create_ports(url, port_body, count, threads, start=start, timeout=60)
    except BaseException as exc:  # the parent must always get an answer
        res = LoadResult(failures=[f"client process crashed: {exc!r}"])
        res.statuses["crash"] += 1
    results.put(res)
