"""The cost of a Prometheus scrape of the engine (``/metrics``) with a large store.

    python -m bench.metrics_scrape [--networks 1000] [--ports 100000] [--hosts 50]
                                   [--scrapes 30] [--database URL]

Builds a fresh store (SQLite in a temporary directory, or the PostgreSQL database
given, which must be empty) holding ``--networks`` networks with a /16 subnet each
and ``--ports`` ports spread over them (bulk INSERTs, as bench.ipam_throughput seeds
its port lists), ``--hosts`` hosts whose agents serve every network, then renders
the metrics page as the endpoint does (ipam.api.metrics.Metrics.render: one read
transaction and the text format) ``--scrapes`` times.

Figures: ``metrics_scrape_ms_<N>k`` (median) and ``metrics_scrape_p99_ms_<N>k``,
``metrics_page_kb_<N>k`` (the page's size). Figures come last: ``metric: value unit``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench._common import percentile
from bench.ipam_throughput import seed_ports
from ipam.api.metrics import Metrics
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.store import Store


def progress(msg: str) -> None:
    print(f"# {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=1000)
    parser.add_argument("--ports", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--database", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ovirt-ipam-bench-metrics-", dir="/var/tmp"))
    try:
        db = Database(args.database or f"sqlite:///{tmp}/ipam.sqlite")
        migrate.upgrade(db)
        store = Store(db)
        began = time.monotonic()
        nets: list[str] = []
        per_net = args.ports // args.networks
        for i in range(args.networks):
            net = store.create_network({"name": f"n{i}", "vdsm_name": f"bn{i}"})
            cidr = f"10.{i // 256}.{i % 256}.0/24" if per_net < 250 else f"10.{i % 250}.0.0/16"
            sub = store.create_subnet({"network_id": net["id"], "cidr": cidr})
            seed_ports(db, net["id"], sub["id"], per_net)
            nets.append(net["id"])
        status = {"networks": [{"id": n, "dnsmasq": "running", "ports": per_net} for n in nets]}
        for h in range(args.hosts):
            store.host_heartbeat(f"host-{h}", [f"bn{i}" for i in range(args.networks)], 1.0)
            store.agent_heartbeat(f"host-{h}", nets, status, 1.0)
        progress(
            f"store: {args.networks} networks, {per_net * args.networks} ports, "
            f"{args.hosts} hosts, built in {time.monotonic() - began:.1f}s"
        )
        metrics = Metrics(store, 6.0, outbox_depth=lambda: 0, failovers=lambda: 0)
        metrics.render()  # warm-up: the first read fills caches
        times, size = [], 0
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            page = metrics.render()
            times.append((time.perf_counter() - t0) * 1000)
            size = len(page)
        k = per_net * args.networks // 1000
        progress(
            f"{args.scrapes} scrapes: median {statistics.median(times):.1f} ms, "
            f"max {max(times):.1f} ms, page {size / 1024:.0f} KiB"
        )
        figures = [
            (f"metrics_scrape_ms_{k}k", statistics.median(times), "ms"),
            (f"metrics_scrape_p99_ms_{k}k", percentile(times, 0.99), "ms"),
            (f"metrics_page_kb_{k}k", size / 1024, "KiB"),
        ]
        db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name, value, unit in figures:
        print(f"{name}: {value:.2f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
