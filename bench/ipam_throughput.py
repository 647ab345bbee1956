"""Port-create throughput of the IPAM store, in-process and over REST, and the cost
of the full port list oVirt engine asks for on every vNIC allocate and deallocate.

    python -m bench.ipam_throughput [--inprocess N] [--rest N] [--clients C]
                                    [--only sqlite|postgresql] [--profile]
                                    [--skip-inprocess] [--skip-rest] [--skip-list]
                                    [--list-sizes 10000,30000] [--during-creates N]
                                    [--workers W] [--ready N]

(a) In-process, through the service layer (``Store.create_port``, one thread), on
    SQLite and on PostgreSQL, into an empty /16 and into a /16 that is already 90%
    allocated (pre-filled with bulk INSERTs into ports and ip_allocations and the
    subnet's fresh_cursor moved past them, exactly the state the allocator would
    have left), and into an empty stateful IPv6 /64 (``..._v6_64``).
(b) Over REST: C concurrent clients (threads, keep-alive httpx clients) against a
    real ``ovirt-ipam engine`` process with ``[api] workers = W`` (default 1), on
    embedded SQLite and on PostgreSQL. The figures keep their names whatever W is
    (``api_workers`` says it); compare runs with different W made one after the other.
    With ``--ready N``, also the port-ready latency: N creates one after another on a
    network a stand-in DHCP agent serves (ipam.lab.ackagent: it acknowledges each port
    event at once), each answered ACTIVE, timed from the POST to the answer
    (``port_ready_p50_ms``, ``port_ready_p99_ms``, suffix ``_postgresql`` as below).
(c) The port list over REST, against a real engine process whose store is seeded
    in-process (bulk INSERTs of oVirt-like ports, each with one address, into the
    database the engine serves, while it runs) up to each of --list-sizes ports:
    ``list_ports_first_ms_N`` the first unfiltered ``GET /v2.0/ports`` after the
    seeding, ``list_ports_ms_N`` the median of the next ones (nothing changed
    between them), ``list_ports_after_create_ms_N`` the median of a list right after
    a port create (oVirt's pattern: every allocate changes the ports), and
    ``list_ports_by_device_ms_N`` the median of ``?device_id=`` lists. A list is
    timed from the request to the last byte of its body (the client does not parse
    it inside the clock). At the largest size, ``create_during_list_p99_ms``: port
    creates, one after another, while 4 client processes keep listing all ports
    (``create_alone_p99_ms``: the same creates with no lists, just before).
    Figures for SQLite have no suffix, those for PostgreSQL end in ``_postgresql``.

Every run uses fresh temporary databases and removes them, and the engine processes
it started, at the end. Figures come last, one per line: ``metric: value unit``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import pstats
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import sqlalchemy as sa

from bench._common import percentile
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.db.schema import ip_allocations, ports, subnets
from ipam.lab.ackagent import AckingAgent
from ipam.lab.harness import EngineProcess, database_conf, db_upgrade, temp_pg_database
from ipam.lab.load import create_network_and_subnet, create_ports
from ipam.store import Store, allocation

CIDR = "10.0.0.0/16"
CIDR_V6 = "2001:db8::/64"  # a stateful DHCPv6 subnet: pools of 2**64 - 2 addresses
WARMUP_INPROCESS = 100
WARMUP_REST = 200
UNIT = "creates/s"
LISTERS = 4
LIST_REPEAT = 10
DEVICE_REPEAT = 50
DURING_MAX_S = 120.0


def progress(msg: str) -> None:
    print(f"# {msg}", flush=True)


def prefill(db: Database, net_id: str, subnet_id: str, fraction: float) -> int:
    """Allocate ``fraction`` of the subnet's pools to new ports, in bulk; returns how many."""
    with db.engine.begin() as conn:
        pools = allocation.load_pools(conn, subnet_id)
        pool_size = conn.execute(
            sa.select(subnets.c.pool_size).where(subnets.c.id == subnet_id)
        ).scalar_one()
        count = int(pool_size * fraction)
        now = "2024-01-01T00:00:00Z"
        chunk = 5000
        for start in range(0, count, chunk):
            port_rows, ip_rows = [], []
            for n in range(start, min(count, start + chunk)):
                port_id = str(uuid.uuid4())
                # MACs outside what generate_mac would pick first are not needed: the
                # store checks every generated MAC against the network's ports anyway.
                mac = f"fa:16:3e:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
                port_rows.append(
                    {
                        "id": port_id,
                        "network_id": net_id,
                        "name": f"prefill-{n}",
                        "mac_address": mac,
                        "device_id": "",
                        "device_owner": "compute:nova",
                        "host_id": "",
                        "status": "DOWN",
                        "admin_state_up": True,
                        "project_id": "",
                        "description": "",
                        "extra": {},
                        "created_at": now,
                        "updated_at": now,
                        "revision_number": 1,
                    }
                )
                ip_rows.append(
                    {
                        "subnet_id": subnet_id,
                        "ip": allocation.offset_to_ip(pools, n),
                        "port_id": port_id,
                    }
                )
            conn.execute(sa.insert(ports), port_rows)
            conn.execute(sa.insert(ip_allocations), ip_rows)
        conn.execute(sa.update(subnets).where(subnets.c.id == subnet_id).values(fresh_cursor=count))
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return count


def check_unique(db: Database, subnet_id: str) -> None:
    """Every address in the subnet once, every MAC on the network once (sanity check)."""
    with db.engine.connect() as conn:
        n_ips = conn.execute(
            sa.select(sa.func.count()).where(ip_allocations.c.subnet_id == subnet_id)
        ).scalar_one()
        n_distinct = conn.execute(
            sa.select(sa.func.count(sa.distinct(ip_allocations.c.ip))).where(
                ip_allocations.c.subnet_id == subnet_id
            )
        ).scalar_one()
        n_ports = conn.execute(sa.select(sa.func.count()).select_from(ports)).scalar_one()
        n_macs = conn.execute(
            sa.select(sa.func.count(sa.distinct(ports.c.mac_address)))
        ).scalar_one()
    if n_ips != n_distinct or n_ports != n_macs or n_ports != n_ips:
        raise AssertionError(
            f"duplicates: {n_ips} allocations / {n_distinct} distinct IPs, "
            f"{n_ports} ports / {n_macs} distinct MACs"
        )


def timed_creates(store: Store, net_id: str, n: int) -> float:
    body = {"network_id": net_id, "device_owner": "compute:nova"}
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        store.create_port({**body, "name": f"vm-{i}"})
    elapsed = time.perf_counter() - start
    if n >= 1000:
        progress(f"  CPU {1000 * (time.process_time() - cpu) / n:.2f} ms/create in this process")
    return elapsed


def inprocess(
    url: str, fill: float, n: int, profile: bool = False, cidr: str = CIDR, version: int = 4
) -> float:
    db = Database(url)
    try:
        migrate.upgrade(db)
        store = Store(db)
        net = store.create_network({"name": "bench"})
        sub = store.create_subnet({"network_id": net["id"], "cidr": cidr, "ip_version": version})
        if fill:
            t0 = time.perf_counter()
            count = prefill(db, net["id"], sub["id"], fill)
            progress(f"  prefilled {count} addresses in {time.perf_counter() - t0:.1f}s")
        timed_creates(store, net["id"], WARMUP_INPROCESS)
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        elapsed = timed_creates(store, net["id"], n)
        if prof is not None:
            prof.disable()
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(30)
        check_unique(db, sub["id"])
        return n / elapsed
    finally:
        db.dispose()


def engine_cpu_seconds(engine: EngineProcess) -> float | None:
    """CPU time of the engine process and of its API workers (its children), so far."""
    own = engine.cpu_seconds()
    if own is None or engine.proc is None:
        return None
    try:
        kids = psutil.Process(engine.proc.pid).children()
        return own + sum(sum(k.cpu_times()[:2]) for k in kids)
    except psutil.Error:
        return None


def rest(tmp: Path, extra_conf: str, n: int, clients: int, pg: bool) -> float:
    engine = EngineProcess(tmp, extra_conf)
    if pg:
        db_upgrade(engine.conf)
    engine.start()
    try:
        engine.wait_up()
        net_id, _ = create_network_and_subnet(engine.url, "bench", CIDR)
        body = {"network_id": net_id, "device_owner": "compute:nova"}
        warm = create_ports(engine.url, body, WARMUP_REST, clients)
        cpu0 = engine_cpu_seconds(engine)
        res = create_ports(engine.url, body, n, clients)
        cpu1 = engine_cpu_seconds(engine)
        if cpu0 is not None and cpu1 is not None:
            progress(f"  engine CPU {1000 * (cpu1 - cpu0) / n:.2f} ms/create (workers included)")
        by_pid = Counter(
            re.findall(r" (\d+) INFO ipam\.store\.facade \[-\] Created port ", engine.logs())
        )
        if len(by_pid) > 1:  # keep-alive connections stay with the worker that took them
            progress("  creates by API worker: " + ", ".join(f"{p} {c}" for p, c in by_pid.items()))
        bad = {k: v for k, v in (warm.statuses + res.statuses).items() if k != 201}
        if bad:
            raise AssertionError(
                f"failed requests {bad}: {res.failures[:5]}\n{engine.server_errors()[-4000:]}"
            )
        ips = [ip for p in warm.ports + res.ports for ip in p["ips"]]
        macs = [p["mac_address"] for p in warm.ports + res.ports]
        if len(set(ips)) != len(ips) or len(set(macs)) != len(macs):
            raise AssertionError("duplicate IPs or MACs in the answers")
        return n / res.elapsed
    finally:
        engine.stop()


def port_ready(tmp: Path, extra_conf: str, n: int, pg: bool, suffix: str) -> list:
    """Port-ready latency: n creates, one after another, on a network a stand-in agent
    serves; every answer must be ACTIVE, acknowledged by that agent."""
    engine = EngineProcess(tmp, extra_conf)
    if pg:
        db_upgrade(engine.conf)
    engine.start()
    agent: AckingAgent | None = None
    try:
        engine.wait_up()
        net_id, _ = create_network_and_subnet(engine.url, "bench-ready", CIDR)
        agent = AckingAgent(f"filesystem://{tmp}/state/bus", "bench-ready-h1", [net_id])
        agent.start()
        body = {"port": {"network_id": net_id, "device_owner": "oVirt"}}
        took: list[float] = []
        with httpx.Client(base_url=engine.url, timeout=60) as client:
            deadline = time.monotonic() + 30
            while client.post("/v2.0/ports", json=body).json()["port"]["status"] != "ACTIVE":
                if time.monotonic() > deadline:
                    raise AssertionError("the stand-in agent's ports never became ready")
            for _ in range(n):
                start = time.perf_counter()
                r = client.post("/v2.0/ports", json=body)
                took.append(1000 * (time.perf_counter() - start))
                port = r.json()["port"]
                if r.status_code != 201 or port["dhcp_ready_hosts"] != [agent.host]:
                    raise AssertionError(f"not ready: {r.status_code} {r.text[:300]}")
        progress(
            f"  port ready: p50 {percentile(took, 0.5):.1f} ms, p99 {percentile(took, 0.99):.1f} ms"
        )
        return [
            (f"port_ready_p50_ms{suffix}", percentile(took, 0.5), "ms"),
            (f"port_ready_p99_ms{suffix}", percentile(took, 0.99), "ms"),
        ]
    finally:
        if agent is not None:
            agent.stop()
        engine.stop()


def seed_ports(db: Database, net_id: str, subnet_id: str, count: int) -> list[str]:
    """Add ``count`` ports as oVirt engine creates them (device_owner oVirt, a vNIC id
    as device_id, a host, ACTIVE), each with the subnet's next never-used address, in
    bulk INSERTs; the subnet's fresh_cursor moves past them. Returns their device ids."""
    device_ids: list[str] = []
    with db.engine.begin() as conn:
        pools = allocation.load_pools(conn, subnet_id)
        first = conn.execute(
            sa.select(subnets.c.fresh_cursor).where(subnets.c.id == subnet_id)
        ).scalar_one()
        base = datetime.now(UTC) - timedelta(days=1)
        chunk = 5000
        for start in range(first, first + count, chunk):
            port_rows, ip_rows = [], []
            for n in range(start, min(first + count, start + chunk)):
                port_id, device_id = str(uuid.uuid4()), str(uuid.uuid4())
                device_ids.append(device_id)
                # 02:... is locally administered and never what the store generates.
                mac = "02:00:" + ":".join(f"{n >> s & 0xFF:02x}" for s in (24, 16, 8, 0))
                created = (base + timedelta(microseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                port_rows.append(
                    {
                        "id": port_id,
                        "network_id": net_id,
                        "name": f"nic{n % 4 + 1}",
                        "mac_address": mac,
                        "device_id": device_id,
                        "device_owner": "oVirt",
                        "host_id": f"host-{n % 50}.example.org",
                        "status": "ACTIVE",
                        "admin_state_up": True,
                        "project_id": "oVirt",
                        "description": "",
                        "extra": {"security_groups": []},
                        "created_at": created,
                        "updated_at": created,
                        "revision_number": 2,
                    }
                )
                ip_rows.append(
                    {
                        "subnet_id": subnet_id,
                        "ip": allocation.offset_to_ip(pools, n),
                        "port_id": port_id,
                    }
                )
            conn.execute(sa.insert(ports), port_rows)
            conn.execute(sa.insert(ip_allocations), ip_rows)
        conn.execute(
            sa.update(subnets).where(subnets.c.id == subnet_id).values(fresh_cursor=first + count)
        )
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return device_ids


def timed_get(client: httpx.Client, path: str) -> tuple[float, bytes]:
    """(milliseconds from the request to the body's last byte, the body); 200 only."""
    start = time.perf_counter()
    r = client.get(path)
    body = r.content
    elapsed = 1000 * (time.perf_counter() - start)
    if r.status_code != 200:
        raise AssertionError(f"GET {path}: {r.status_code} {body[:300]!r}")
    return elapsed, body


def count_ports(body: bytes) -> int:
    return len(json.loads(body)["ports"])


class RawLister:
    """GET /v2.0/ports over one keep-alive socket, the body read into a buffer kept
    from one list to the next and not parsed: a client that takes as little of the
    machine's CPU as it can, so that a figure measured beside it is the engine's."""

    def __init__(self, url: str) -> None:
        where = httpx.URL(url)
        self.address = (where.host, where.port)
        self.sock = socket.create_connection(self.address, timeout=120)
        self.request = f"GET /v2.0/ports HTTP/1.1\r\nHost: {where.host}\r\n\r\n".encode()
        self.buf = bytearray(1 << 20)

    def list(self) -> float:
        """One list; its milliseconds, from the request to the body's last byte."""
        try:
            return self._list()
        except ConnectionError:  # the engine closed the idle keep-alive connection
            self.sock.close()
            self.sock = socket.create_connection(self.address, timeout=120)
            return self._list()

    def _list(self) -> float:
        start = time.perf_counter()
        self.sock.sendall(self.request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the engine closed the connection")
            head += chunk
        head, _, got = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            raise AssertionError(f"list: {lines[0]}")
        length = next(
            int(v)
            for k, _, v in (h.partition(":") for h in lines[1:])
            if k.lower() == "content-length"
        )
        if len(self.buf) < length:
            self.buf = bytearray(length)
        view, left = memoryview(self.buf), length - len(got)
        while left > 0:
            n = self.sock.recv_into(view[: min(left, 1 << 20)])
            if not n:
                raise ConnectionError("the engine closed the connection")
            left -= n
        return 1000 * (time.perf_counter() - start)

    def close(self) -> None:
        self.sock.close()


def _lister(url: str, ready: Any, stop: Any, results: Any) -> None:
    """A client process that lists all ports until told to stop; puts its list times."""
    times: list[float] = []
    error = ""
    try:
        lister = RawLister(url)
        lister.list()  # one list done before the creates start
        ready.wait(300)
        while not stop.is_set():
            times.append(lister.list())
        lister.close()
    except BaseException as exc:  # the parent must always get an answer
        error = repr(exc)
    results.put((times, error))


def timed_creates_rest(client: httpx.Client, net_id: str, n: int, max_s: float) -> list[float]:
    """Up to n port creates (oVirt's body), one after another; the ms of each."""
    out: list[float] = []
    began = time.perf_counter()
    for _ in range(n):
        if time.perf_counter() - began > max_s:
            break
        body = {"network_id": net_id, "device_owner": "oVirt", "device_id": str(uuid.uuid4())}
        start = time.perf_counter()
        r = client.post("/v2.0/ports", json={"port": {**body, "name": "nic1"}})
        out.append(1000 * (time.perf_counter() - start))
        if r.status_code != 201:
            raise AssertionError(f"create: {r.status_code} {r.text[:300]}")
    return out


def creates_during_lists(url: str, net_id: str, n: int) -> tuple[list[float], list[float]]:
    """Up to ``n`` port creates, one after another, while LISTERS processes keep listing
    all ports (at most DURING_MAX_S seconds). Returns (create ms each, list ms each)."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop, results = ctx.Barrier(LISTERS + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_lister, args=(url, ready, stop, results)) for _ in range(LISTERS)]
    for p in procs:
        p.start()
    creates: list[float] = []
    try:
        ready.wait(300)
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/")
            time.sleep(0.5)  # the listers are all busy by now
            creates = timed_creates_rest(client, net_id, n, DURING_MAX_S)
    finally:
        stop.set()
        lists: list[float] = []
        errors = []
        for _ in procs:
            times, error = results.get(timeout=300)
            lists.extend(times)
            if error:
                errors.append(error)
        for p in procs:
            p.join(30)
    if errors:
        raise AssertionError(f"lister failed: {errors}")
    return creates, lists


def list_figures(
    tmp: Path, extra_conf: str, pg: bool, url: str, sizes: list[int], during: int, suffix: str
) -> list[tuple[str, float, str]]:
    """The port-list figures (see the module's docstring) for one backend."""
    out: list[tuple[str, float, str]] = []
    engine = EngineProcess(tmp, extra_conf)
    if pg:
        db_upgrade(engine.conf)
    engine.start()
    db = Database(url)
    try:
        engine.wait_up()
        net_id, sub_id = create_network_and_subnet(engine.url, "bench-list", CIDR)
        total, device_ids = 0, []
        with httpx.Client(base_url=engine.url, timeout=120) as client:
            for size in sizes:
                t0 = time.perf_counter()
                device_ids += seed_ports(db, net_id, sub_id, size - total)
                total = size
                progress(f"  seeded {total} ports in-process in {time.perf_counter() - t0:.1f}s")
                first, body = timed_get(client, "/v2.0/ports")
                if count_ports(body) != total:
                    raise AssertionError(f"listed {count_ports(body)} ports, {total} expected")
                steady = [timed_get(client, "/v2.0/ports")[0] for _ in range(LIST_REPEAT)]
                after = []
                for i in range(LIST_REPEAT):
                    r = client.post(
                        "/v2.0/ports",
                        json={"port": {"network_id": net_id, "device_id": f"after-{size}-{i}"}},
                    )
                    if r.status_code != 201:
                        raise AssertionError(f"create: {r.status_code} {r.text[:300]}")
                    total += 1
                    ms, body = timed_get(client, "/v2.0/ports")
                    after.append(ms)
                if count_ports(body) != total:
                    raise AssertionError(f"listed {count_ports(body)} ports, {total} expected")
                device = device_ids[len(device_ids) // 2]
                path = f"/v2.0/ports?device_id={device}"
                if count_ports(timed_get(client, path)[1]) != 1:
                    raise AssertionError(f"{path} did not find its one port")
                by_device = [timed_get(client, path)[0] for _ in range(DEVICE_REPEAT)]
                progress(
                    f"  {total} ports ({len(body) / 1e6:.1f} MB): first list {first:.0f} ms, "
                    f"then {statistics.median(steady):.0f} ms, after a create "
                    f"{statistics.median(after):.0f} ms, by device_id "
                    f"{statistics.median(by_device):.1f} ms"
                )
                out += [
                    (f"list_ports_first_ms_{size}{suffix}", first, "ms"),
                    (f"list_ports_ms_{size}{suffix}", statistics.median(steady), "ms"),
                    (f"list_ports_after_create_ms_{size}{suffix}", statistics.median(after), "ms"),
                    (f"list_ports_by_device_ms_{size}{suffix}", statistics.median(by_device), "ms"),
                ]
        if during:
            with httpx.Client(base_url=engine.url, timeout=120) as client:
                idle = timed_creates_rest(client, net_id, during, DURING_MAX_S)
            progress(
                f"  {len(idle)} creates alone: p50 {percentile(idle, 0.5):.1f} ms, p99 "
                f"{percentile(idle, 0.99):.1f} ms"
            )
            progress(f"  {during} creates while {LISTERS} clients keep listing {total} ports")
            creates, lists = creates_during_lists(engine.url, net_id, during)
            progress(
                f"  {len(creates)} creates: p50 {percentile(creates, 0.5):.1f} ms, p99 "
                f"{percentile(creates, 0.99):.1f} ms; {len(lists)} lists meanwhile, p50 "
                f"{percentile(lists, 0.5):.0f} ms"
            )
            out += [
                (f"create_alone_p99_ms{suffix}", percentile(idle, 0.99), "ms"),
                (f"create_during_list_p50_ms{suffix}", percentile(creates, 0.5), "ms"),
                (f"create_during_list_p99_ms{suffix}", percentile(creates, 0.99), "ms"),
                (f"list_during_creates_p50_ms{suffix}", percentile(lists, 0.5), "ms"),
            ]
        errors = engine.server_errors()
        if errors:
            raise AssertionError(f"engine errors:\n{errors[-4000:]}")
        return out
    finally:
        db.dispose()
        engine.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ipam_throughput")
    parser.add_argument("--inprocess", type=int, default=2000, help="creates measured in-process")
    parser.add_argument("--rest", type=int, default=1500, help="creates measured over REST")
    parser.add_argument("--clients", type=int, default=8, help="concurrent REST clients")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument("--skip-list", action="store_true", help="no port-list figures")
    parser.add_argument(
        "--list-sizes", default="10000,30000", help="port counts the lists are timed at"
    )
    parser.add_argument(
        "--during-creates",
        type=int,
        default=200,
        help="creates timed while 4 clients list all ports (0: none)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of each in-process run"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="[api] workers of the REST and list engines"
    )
    parser.add_argument(
        "--ready", type=int, default=0, help="creates timed for port-ready latency (0: none)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be 1 or more")
    workers_conf = f"workers = {args.workers}\n"
    backends = [args.only] if args.only else ["sqlite", "postgresql"]
    results: list[tuple[str, float, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="ovirt-ipam-bench-"))
    try:
        for backend in [] if args.skip_inprocess else backends:
            for label, fill, cidr, version in (
                ("empty", 0.0, CIDR, 4),
                ("90pct", 0.9, CIDR, 4),
                ("v6_64", 0.0, CIDR_V6, 6),
            ):
                progress(f"in-process {backend} {label}: {args.inprocess} creates into {cidr}")
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/inprocess-{label}.sqlite"
                    rate = inprocess(url, fill, args.inprocess, args.profile, cidr, version)
                else:
                    with temp_pg_database() as url:
                        rate = inprocess(url, fill, args.inprocess, args.profile, cidr, version)
                progress(f"  {rate:.0f} {UNIT}")
                results.append((f"creates_per_s_inprocess_{backend}_{label}", rate, UNIT))
        if not args.skip_rest:
            results.append(("api_workers", args.workers, "processes"))
            for backend in backends:
                progress(
                    f"REST {backend}: {args.rest} creates, {args.clients} clients, "
                    f"{args.workers} API worker(s)"
                )
                sub = tmp / f"rest-{backend}"
                sub.mkdir()
                if backend == "sqlite":
                    rate = rest(sub, workers_conf, args.rest, args.clients, pg=False)
                else:
                    with temp_pg_database() as url:
                        conf = workers_conf + database_conf(url)
                        rate = rest(sub, conf, args.rest, args.clients, pg=True)
                progress(f"  {rate:.0f} {UNIT}")
                results.append((f"creates_per_s_rest_{backend}", rate, UNIT))
        for backend in backends if args.ready else []:
            progress(f"port ready {backend}: {args.ready} creates, {args.workers} API worker(s)")
            sub = tmp / f"ready-{backend}"
            sub.mkdir()
            if backend == "sqlite":
                results += port_ready(sub, workers_conf, args.ready, False, "")
            else:
                with temp_pg_database() as url:
                    conf = workers_conf + database_conf(url)
                    results += port_ready(sub, conf, args.ready, True, "_postgresql")
        sizes = sorted(int(n) for n in args.list_sizes.split(",") if n)
        for backend in [] if args.skip_list or not sizes else backends:
            progress(f"port list {backend}: {', '.join(map(str, sizes))} ports")
            sub = tmp / f"list-{backend}"
            sub.mkdir()
            if backend == "sqlite":
                url = f"sqlite:///{sub}/state/ovirt-ipam.sqlite"
                results += list_figures(
                    sub, workers_conf, False, url, sizes, args.during_creates, ""
                )
            else:
                with temp_pg_database() as url:
                    results += list_figures(
                        sub,
                        workers_conf + database_conf(url),
                        True,
                        url,
                        sizes,
                        args.during_creates,
                        "_postgresql",
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for metric, value, unit in results:
        print(f"{metric}: {value:.1f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
