"""Several engine processes on one PostgreSQL store, hammered by several client
processes at once: no request fails, no IP or MAC is handed out twice, a contested
fixed IP goes to exactly one port, and a subnet that runs out says so with a 409.

The engines are real ``ovirt-ipam engine`` processes (one uvicorn each); the clients
are spawned processes, each with a few threads holding keep-alive connections to
"their" engine, released together by a barrier.
"""

from __future__ import annotations

import ipaddress
import multiprocessing
import queue
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ipam.lab.harness import EngineProcess, database_conf, engines_sharing
from ipam.lab.load import LoadResult, client_process, create_network_and_subnet

pytestmark = [pytest.mark.postgresql, pytest.mark.timeout(120)]

ENGINES = 4
CLIENT_DEADLINE = 90  # seconds for all client processes to report


@pytest.fixture(scope="module")
def pg_url(pg_url_for_module: str) -> str:
    """One fresh database for the module (each test works on a network of its own and
    checks that network; the engines' logs must stay free of errors throughout)."""
    return pg_url_for_module


@pytest.fixture(scope="module")
def pg_engines(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[EngineProcess]]:
    """Four engine processes sharing the fresh database pg_url (schema via db upgrade),
    shared by the module's tests."""
    tmp = tmp_path_factory.mktemp("pg-engines")
    with engines_sharing(tmp, database_conf(pg_url), ENGINES) as engines:
        yield engines


def run_clients(
    urls: list[str], body: dict[str, Any] | list[dict[str, Any]], count: int, threads: int
) -> list[LoadResult]:
    """One client process per URL, each POSTing ``count`` ports with ``threads`` threads."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(urls))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=client_process, args=(url, body, count, threads, start, results))
        for url in urls
    ]
    for proc in procs:
        proc.start()
    out: list[LoadResult] = []
    try:
        for _ in procs:
            try:
                out.append(results.get(timeout=CLIENT_DEADLINE))
            except queue.Empty:
                raise AssertionError(
                    f"client processes did not report within {CLIENT_DEADLINE}s "
                    f"(exit codes {[p.exitcode for p in procs]})"
                ) from None
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return out


def merged(results: list[LoadResult]) -> LoadResult:
    total = LoadResult()
    for res in results:
        total.merge(res)
    return total


def engine_errors(engines: list[EngineProcess]) -> str:
    return "\n".join(
        f"--- engine {e.port}\n{e.server_errors()}" for e in engines if e.server_errors()
    )


def list_ports(url: str, net_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/v2.0/ports", params={"network_id": net_id}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["ports"]


def db_duplicates(pg_url: str, net_id: str, subnet_id: str) -> dict[str, int]:
    """Counts straight from the store: ports, distinct MACs, allocations, distinct IPs."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM ports WHERE network_id = :net) AS ports,"
                    " (SELECT count(DISTINCT mac_address) FROM ports WHERE network_id = :net)"
                    " AS macs,"
                    " (SELECT count(*) FROM ip_allocations WHERE subnet_id = :sub) AS ips,"
                    " (SELECT count(DISTINCT ip) FROM ip_allocations WHERE subnet_id = :sub)"
                    " AS distinct_ips,"
                    " (SELECT count(*) FROM (SELECT port_id FROM ip_allocations"
                    "  WHERE subnet_id = :sub GROUP BY port_id HAVING count(*) > 1) x)"
                    " AS multi"
                ),
                {"net": net_id, "sub": subnet_id},
            ).one()
            return dict(row._mapping)
    finally:
        engine.dispose()


def check_api_and_db(
    engines: list[EngineProcess],
    pg_url: str,
    net_id: str,
    subnet_id: str,
    created: LoadResult,
    n: int,
) -> None:
    """The API (asked through every engine) and the database agree: n ports, no duplicates."""
    cidr = None
    for eng in engines:
        listed = list_ports(eng.url, net_id)
        assert len(listed) == n
        assert {p["id"] for p in listed} == {p["id"] for p in created.ports}
        ips = [f["ip_address"] for p in listed for f in p["fixed_ips"]]
        macs = [p["mac_address"] for p in listed]
        assert len(ips) == n and len(set(ips)) == n, "duplicate IPs in the API list"
        assert len(set(macs)) == n, "duplicate MACs in the API list"
        if cidr is None:
            sub = httpx.get(f"{eng.url}/v2.0/subnets/{subnet_id}", timeout=10).json()["subnet"]
            cidr = ipaddress.IPv4Network(sub["cidr"])
            assert all(ipaddress.IPv4Address(ip) in cidr for ip in ips)
    answered_ips = [ip for p in created.ports for ip in p["ips"]]
    assert len(set(answered_ips)) == len(answered_ips) == n
    assert len({p["mac_address"] for p in created.ports}) == n
    counts = db_duplicates(pg_url, net_id, subnet_id)
    assert counts == {"ports": n, "macs": n, "ips": n, "distinct_ips": n, "multi": 0}


def test_four_engines_2000_creates_no_failures_no_duplicates(
    pg_engines: list[EngineProcess], pg_url: str
) -> None:
    net_id, subnet_id = create_network_and_subnet(pg_engines[0].url, "conc20", "10.20.0.0/20")
    body = {"network_id": net_id, "device_owner": "compute:nova"}

    results = run_clients([e.url for e in pg_engines], body, count=500, threads=4)

    total = merged(results)
    errors = engine_errors(pg_engines)
    assert total.statuses == Counter({201: 2000}), (total.statuses, total.failures, errors)
    assert [sum(r.statuses.values()) for r in results] == [500] * ENGINES
    check_api_and_db(pg_engines, pg_url, net_id, subnet_id, total, 2000)
    assert not errors


def test_same_fixed_ip_from_several_processes_one_winner(
    pg_engines: list[EngineProcess], pg_url: str
) -> None:
    net_id, subnet_id = create_network_and_subnet(pg_engines[0].url, "conc-ip", "10.30.0.0/24")
    contested = [f"10.30.0.{50 + i}" for i in range(5)]
    bodies = [
        {"network_id": net_id, "fixed_ips": [{"subnet_id": subnet_id, "ip_address": ip}]}
        for ip in contested
    ]
    threads = 3
    # every thread of every process asks for each contested IP in turn, in step
    urls = [e.url for e in pg_engines]
    results = run_clients(urls, bodies, count=len(bodies) * threads, threads=threads)

    total = merged(results)
    attempts = ENGINES * threads * len(contested)
    losers = attempts - len(contested)
    errors = engine_errors(pg_engines)
    assert total.statuses == Counter({201: len(contested), 409: losers}), (
        total.statuses,
        total.failures,
        errors,
    )
    assert total.error_types == Counter({"IpAddressAlreadyAllocated": losers})
    assert sorted(ip for p in total.ports for ip in p["ips"]) == contested
    check_api_and_db(pg_engines, pg_url, net_id, subnet_id, total, len(contested))
    assert not errors


def test_nearly_full_subnet_hands_out_exactly_its_pool(
    pg_engines: list[EngineProcess], pg_url: str
) -> None:
    net_id, subnet_id = create_network_and_subnet(pg_engines[0].url, "conc26", "10.40.0.0/26")
    sub = httpx.get(f"{pg_engines[0].url}/v2.0/subnets/{subnet_id}", timeout=10).json()["subnet"]
    pool = sub["allocation_pools"]
    assert pool == [{"start": "10.40.0.2", "end": "10.40.0.62"}]  # 61 addresses
    body = {"network_id": net_id}

    results = run_clients([e.url for e in pg_engines], body, count=20, threads=4)

    total = merged(results)
    errors = engine_errors(pg_engines)
    assert total.statuses == Counter({201: 61, 409: 19}), (total.statuses, total.failures, errors)
    assert total.error_types == Counter({"IpAddressGenerationFailure": 19})
    got = sorted(ipaddress.IPv4Address(ip) for p in total.ports for ip in p["ips"])
    assert got == [ipaddress.IPv4Address("10.40.0.2") + i for i in range(61)]
    check_api_and_db(pg_engines, pg_url, net_id, subnet_id, total, 61)
    assert not errors
