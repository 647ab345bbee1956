"""A REST load driver, shared by the benchmarks and the multi-engine concurrency tests:
threads with keep-alive httpx clients POSTing ports, also run in child processes
(client_process), every answer recorded in a LoadResult.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


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
