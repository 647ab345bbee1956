"""Port-create throughput of the IPAM store, in-process and over REST.

    python -m bench.ipam_throughput [--inprocess N] [--rest N] [--clients C]
                                    [--only sqlite|postgresql] [--profile]
                                    [--skip-inprocess] [--skip-rest]

(a) In-process, through the service layer (``Store.create_port``, one thread), on
    SQLite and on PostgreSQL, into an empty /16 and into a /16 that is already 90%
    allocated (pre-filled with bulk INSERTs into ports and ip_allocations and the
    subnet's fresh_cursor moved past them, exactly the state the allocator would
    have left).
(b) Over REST: C concurrent clients (threads, keep-alive httpx clients) against a
    real ``ovirt-ipam engine`` process, on embedded SQLite and on PostgreSQL.

Every run uses fresh temporary databases and removes them, and the engine processes
it started, at the end. Figures come last, one per line: ``metric: value unit``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench._common import (
    Engine,
    create_network_and_subnet,
    create_ports,
    database_conf,
    db_upgrade,
    temp_pg_database,
)
from ipam import allocation
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.db.schema import ip_allocations, ports, subnets
from ipam.store import Store

CIDR = "10.0.0.0/16"
WARMUP_INPROCESS = 100
WARMUP_REST = 200
UNIT = "creates/s"


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


def inprocess(url: str, fill: float, n: int, profile: bool = False) -> float:
    db = Database(url)
    try:
        migrate.upgrade(db)
        store = Store(db)
        net = store.create_network({"name": "bench"})
        sub = store.create_subnet({"network_id": net["id"], "cidr": CIDR})
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


def rest(tmp: Path, extra_conf: str, n: int, clients: int, pg: bool) -> float:
    engine = Engine(tmp, extra_conf)
    if pg:
        db_upgrade(engine.conf)
    engine.start()
    try:
        engine.wait_up()
        net_id, _ = create_network_and_subnet(engine.url, "bench", CIDR)
        body = {"network_id": net_id, "device_owner": "compute:nova"}
        warm = create_ports(engine.url, body, WARMUP_REST, clients)
        cpu0 = engine.cpu_seconds()
        res = create_ports(engine.url, body, n, clients)
        cpu1 = engine.cpu_seconds()
        if cpu0 is not None and cpu1 is not None:
            progress(f"  engine CPU {1000 * (cpu1 - cpu0) / n:.2f} ms/create")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ipam_throughput")
    parser.add_argument("--inprocess", type=int, default=2000, help="creates measured in-process")
    parser.add_argument("--rest", type=int, default=1500, help="creates measured over REST")
    parser.add_argument("--clients", type=int, default=8, help="concurrent REST clients")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of each in-process run"
    )
    args = parser.parse_args(argv)
    backends = [args.only] if args.only else ["sqlite", "postgresql"]
    results: list[tuple[str, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="ovirt-ipam-bench-"))
    try:
        for backend in [] if args.skip_inprocess else backends:
            for label, fill in (("empty", 0.0), ("90pct", 0.9)):
                progress(f"in-process {backend} {label}: {args.inprocess} creates into a /16")
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/inprocess-{label}.sqlite"
                    rate = inprocess(url, fill, args.inprocess, args.profile)
                else:
                    with temp_pg_database() as url:
                        rate = inprocess(url, fill, args.inprocess, args.profile)
                progress(f"  {rate:.0f} {UNIT}")
                results.append((f"creates_per_s_inprocess_{backend}_{label}", rate))
        if not args.skip_rest:
            for backend in backends:
                progress(f"REST {backend}: {args.rest} creates, {args.clients} clients")
                sub = tmp / f"rest-{backend}"
                sub.mkdir()
                if backend == "sqlite":
                    rate = rest(sub, "", args.rest, args.clients, pg=False)
                else:
                    with temp_pg_database() as url:
                        rate = rest(sub, database_conf(url), args.rest, args.clients, pg=True)
                progress(f"  {rate:.0f} {UNIT}")
                results.append((f"creates_per_s_rest_{backend}", rate))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for metric, value in results:
        print(f"{metric}: {value:.1f} {UNIT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
