"""[api] workers: several API processes on one port, under one engine process.

A real ``ovirt-ipam engine`` with two workers and a stand-in DHCP agent on the bus
(ipam.lab.ackagent) that acknowledges every port at once: the acknowledgements are
consumed by the engine process, never by a worker, so every ACTIVE answer below came
through the wake-up a worker got from its engine process (or its store poll). The
clients open a connection per request, so both workers serve them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from oslo_config import cfg

from ipam.api.wakeups import Hub, Link
from ipam.dhcp import readiness
from ipam.dhcp.readiness import Readiness
from ipam.lab.ackagent import AckingAgent
from ipam.lab.harness import CLI, EngineProcess, database_conf, db_upgrade, end_pids
from ipam.lab.load import create_network_and_subnet
from ipam.polling import wait_for
from ipam.workers import worker_sockets

WORKERS = 2
READY_TIMEOUT = 5.0
CONF = f"workers = {WORKERS}\n[dhcp]\nready_timeout = {READY_TIMEOUT}\n"
_STARTED = re.compile(r" (\d+) INFO ipam\.server \[-\] API worker (\d+) of engine process (\d+)")
_LEADER = re.compile(r" (\d+) INFO ipam\.dhcp\.leader \[-\] This engine runs the DHCP manager")
_CREATED = re.compile(r" (\d+) INFO ipam\.store\.facade \[-\] Created port ")


def started_workers(engine: EngineProcess) -> list[int]:
    """The pids of the workers started so far, from their start lines (each logs its
    own, naming its engine process)."""
    assert engine.proc is not None
    found = []
    for logged_by, pid, parent in _STARTED.findall(engine.logs()):
        assert logged_by == pid and int(parent) == engine.proc.pid
        found.append(int(pid))
    return found


def worker_pids(engine: EngineProcess) -> list[int]:
    """The first WORKERS workers' pids, once all of them started."""
    found = started_workers(engine)
    return found if len(found) == WORKERS else []


@pytest.fixture
def workers_engine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EngineProcess]:
    """An engine with WORKERS API workers, on the store the test's parameter names;
    stopped afterwards, and its workers with it (checked, and ended by pid if not)."""
    extra = CONF
    if request.param == "postgresql":
        pg_url = request.getfixturevalue("pg_url")
        extra += database_conf(pg_url)
    engine = EngineProcess(tmp_path, extra)
    if request.param == "postgresql":
        db_upgrade(engine.conf)
    engine.start()
    try:
        engine.wait_up()
        wait_for(lambda: worker_pids(engine), 30, "both API workers started")
        yield engine
    finally:
        engine.stop()
        left = [p for p in started_workers(engine) if psutil.pid_exists(p)]
        end_pids(left)
    assert left == [], f"API workers {left} outlived their engine process"


def _create_ports(url: str, body: dict[str, Any], clients: int, each: int) -> list[tuple]:
    """``clients`` threads each POST ``each`` ports, a new connection per request;
    (status code, port or error text, seconds) of every answer."""
    out: list[tuple] = []
    lock = threading.Lock()

    def client() -> None:
        mine = []
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, timeout=60, limits=limits) as api:
            for _ in range(each):
                started = time.monotonic()
                r = api.post("/v2.0/ports", json={"port": body})
                took = time.monotonic() - started
                mine.append(
                    (r.status_code, r.json()["port"] if r.status_code == 201 else r.text, took)
                )
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _ready_port(url: str, net_id: str) -> dict | None:
    r = httpx.post(url + "/v2.0/ports", json={"port": {"network_id": net_id}}, timeout=30)
    assert r.status_code == 201, r.text
    port = r.json()["port"]
    return port if port["status"] == "ACTIVE" else None


def _check_run(engine: EngineProcess, clients: int, each: int, host: str) -> None:
    net_id, _ = create_network_and_subnet(engine.url, "workers", "10.20.0.0/16")
    agent = AckingAgent(f"filesystem://{engine.conf.parent}/state/bus", host, [net_id]).start()
    try:
        # The agent serves once its first heartbeat is recorded and has reached the
        # workers: a port is then answered ACTIVE.
        wait_for(lambda: _ready_port(engine.url, net_id), 30, "a port answered ready")
        answers = _create_ports(engine.url, {"network_id": net_id}, clients, each)
    finally:
        agent.stop()
    assert [a for a in answers if a[0] != 201] == []
    ports = [a[1] for a in answers]
    assert len(ports) == clients * each
    wrong = [
        (p["id"], p["status"], p["dhcp_ready_hosts"], p.get("dhcp_status_reason"))
        for p in ports
        if p["status"] != "ACTIVE"
        or p["dhcp_ready_hosts"] != [host]
        or p["dhcp_serving_hosts"] != [host]
    ]
    assert wrong == []
    ips = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
    macs = [p["mac_address"] for p in ports]
    assert len(set(ips)) == len(ips) == len(ports) and len(set(macs)) == len(macs)
    # The store agrees: every port there, once, and ACTIVE.
    listed = httpx.get(engine.url + f"/v2.0/ports?network_id={net_id}", timeout=60).json()["ports"]
    mine = {p["id"]: p for p in listed}
    assert all(mine[p["id"]]["status"] == "ACTIVE" for p in ports)
    listed_ips = [f["ip_address"] for p in listed for f in p["fixed_ips"]]
    assert len(set(listed_ips)) == len(listed_ips)
    # Both workers served creates; one DHCP manager, in the engine process.
    logs = engine.logs()
    creators = set(map(int, _CREATED.findall(logs)))
    assert creators == set(worker_pids(engine))
    assert engine.proc is not None
    assert [int(pid) for pid in _LEADER.findall(logs)] == [engine.proc.pid]
    assert engine.server_errors() == ""
    took = sorted(a[2] for a in answers)
    print(
        f"\n{len(ports)} creates through {WORKERS} workers, all ACTIVE: p50 "
        f"{1000 * took[len(took) // 2]:.1f} ms, p99 {1000 * took[int(len(took) * 0.99)]:.1f} ms"
    )
    assert took[-1] < READY_TIMEOUT  # none waited out the timeout


@pytest.mark.postgresql
@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers_engine", ["postgresql"], indirect=True)
def test_two_workers_on_postgresql_4_clients_x_500(workers_engine: EngineProcess) -> None:
    _check_run(workers_engine, clients=4, each=500, host="workers-pg-h1")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers_engine", ["sqlite"], indirect=True)
def test_two_workers_on_embedded_sqlite(workers_engine: EngineProcess) -> None:
    _check_run(workers_engine, clients=4, each=25, host="workers-sq-h1")
    # A worker that dies is replaced, and the API answers on.
    os.kill(worker_pids(workers_engine)[0], signal.SIGKILL)
    wait_for(
        lambda: len(started_workers(workers_engine)) == WORKERS + 1, 30, "a replacement worker"
    )
    net_id, _ = create_network_and_subnet(workers_engine.url, "after", "10.21.0.0/24")
    answers = _create_ports(workers_engine.url, {"network_id": net_id}, 2, 10)
    assert [a[0] for a in answers] == [201] * 20


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_worker_counts_are_refused_at_start(tmp_path: Path, value: str) -> None:
    conf = tmp_path / "engine.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}/state\n[api]\nworkers = {value}\n")
    result = subprocess.run(
        [*CLI, "engine", "--config-file", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "[api] workers" in result.stderr and "greater than or equal to 1" in result.stderr


def test_a_port_another_engine_serves_is_refused_not_shared() -> None:
    mine = worker_sockets("127.0.0.1", 0, WORKERS, 16)
    try:
        port = mine[0].getsockname()[1]
        assert {s.getsockname()[1] for s in mine} == {port}
        with pytest.raises(cfg.Error, match="Address already in use"):
            worker_sockets("127.0.0.1", port, WORKERS, 16)
    finally:
        for sock in mine:
            sock.close()


def test_a_wake_up_crosses_from_hub_to_link() -> None:
    woken, manager = threading.Event(), threading.Event()
    hub = Hub(on_manager=manager.set)
    link = Link(hub.address, engine_pid=psutil.Process().ppid(), on_acks=woken.set)
    hub.start()
    link.start()
    try:
        # The hub knows the link once its HELLO arrived: until then a wake-up is not
        # sent to it, so repeat it until one arrives.
        wait_for(lambda: hub.acks_recorded() or woken.is_set(), 5, "the acks wake-up")
        link.wake_manager()
        assert manager.wait(5)
    finally:
        link.stop()
        hub.stop()


class _AckDuringRead:
    """A store whose acknowledgement arrives (with its wake-up) while a request is
    reading the acknowledgements: the request must not then sleep."""

    def __init__(self) -> None:
        self.readiness: Readiness | None = None
        self.reads = 0

    def list_agents(self) -> list[dict]:
        status = {"networks": [{"id": "n1", "dnsmasq": "running"}]}
        return [{"host": "h1", "last_seen": time.time(), "status": status}]

    def port_acks(self, _port_id: str) -> list[dict]:
        self.reads += 1
        if self.reads == 1:
            assert self.readiness is not None
            self.readiness.acks_recorded()  # committed after this read's snapshot
            return []
        return [{"host": "h1", "revision_number": 1}]


def test_a_wake_up_during_the_read_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "_POLL", 30.0)  # only the wake-up can answer in time
    store = _AckDuringRead()
    ready = Readiness(store, "any", timeout=20)  # type: ignore[arg-type]
    store.readiness = ready
    started = time.monotonic()
    port = ready.wait({"id": "p1", "network_id": "n1", "revision_number": 1, "status": "DOWN"})
    assert port["status"] == "ACTIVE" and time.monotonic() - started < 5
