"""Faults of the engine and its store (issue 7), every part real: the engine SIGKILLed
mid-flight and started again; PostgreSQL dropping the engine's connections. Each
test checks that no port answered 201 is lost, none exists twice, no IP or MAC is
held twice, every port becomes ACTIVE and every VM leases exactly its IP."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from ipam.lab.harness import PG_ADMIN_URL, start_engine
from ipam.polling import wait_for
from tests.agentlab import ip_of
from tests.conftest import make_store
from tests.faultlab import PortCreator, check_nothing_lost, record

pytestmark = pytest.mark.root


def _all_active(world, ports: list[dict], timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    wait_for(
        lambda: all(world.status(p["id"]) == "ACTIVE" for p in ports),
        timeout,
        f"every port ACTIVE\n{world.agent.logs()[-3000:]}",
        interval=0.2,
    )


def _lost_answers(creator: PortCreator) -> int:
    """Requests sent whose answer never came (the engine died while handling them);
    a refused connection sent nothing."""
    return sum(
        1
        for code, body in creator.answers
        if code == 0 and not str(body).startswith("ConnectError")
    )


def test_engine_killed_mid_flight_and_restarted(world_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    world = world_factory(engine_conf="[dhcp]\nready_timeout = 20\n")
    world.serve()
    world.agent.start()
    world.wait_serving()
    engine = world.engine
    conf_extra = engine.conf.read_text().split(f"bind_port = {engine.port}\n", 1)[1]

    creator = PortCreator(engine.url, world.net_id, 60, pause=0.05)
    creator.start()
    wait_for(lambda: len(creator.answers) >= 10, 60, "ports before the kill")
    engine.proc.send_signal(signal.SIGKILL)
    engine.proc.wait()
    killed_after = len(creator.answers)
    restarted = start_engine(tmp_path, conf_extra, port=engine.port)
    world.engine = restarted
    creator.join(300)
    assert not creator.is_alive()

    created = creator.created()
    unanswered = _lost_answers(creator)
    assert unanswered <= 1  # at most the request in flight when the engine died
    check_nothing_lost(world.api, world.net_id, created, unanswered)
    ports = [
        p
        for p in world.api.get("/v2.0/ports", params={"network_id": world.net_id}).json()["ports"]
        if p["device_owner"] == "oVirt"
    ]
    _all_active(world, ports)
    assert [world.lease(p) for p in ports] == [ip_of(p) for p in ports]
    assert "The engine (re)started" in world.agent.logs()
    restarted.stop()
    record(
        "fault",
        "engine SIGKILLed mid-flight and restarted",
        requests=60,
        answered_201=len(created),
        refused_while_down=sum(1 for c, b in creator.answers if c == 0) - unanswered,
        answer_lost_with_engine=unanswered,
        killed_after_answers=killed_after,
        lost=0,
        duplicated=0,
        leased_exactly=len(ports),
    )


@pytest.mark.postgresql
def test_postgresql_drops_the_engines_connections(world_factory, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    make_store(pg_url).db.dispose()  # the schema, as 'ovirt-ipam db upgrade' makes it
    world = world_factory(
        engine_conf=f"[database]\nconnection = {pg_url}\n[dhcp]\nready_timeout = 20\n"
    )
    world.serve()
    world.agent.start()
    world.wait_serving()
    wait_for(lambda: "runs the DHCP manager" in world.engine.logs(), 30, "the leader lock")
    dbname = sa.engine.make_url(pg_url).database
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def drop_connections() -> int:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "select pg_terminate_backend(pid) from pg_stat_activity "
                        "where datname = :db and pid <> pg_backend_pid()"
                    ),
                    {"db": dbname},
                ).all()
            )

    creator = PortCreator(world.engine.url, world.net_id, 60, pause=0.05)
    creator.start()
    dropped = 0
    for n in (10, 25, 40):
        wait_for(lambda n=n: len(creator.answers) >= n, 60, f"{n} answers")
        dropped += drop_connections()
    creator.join(300)
    admin.dispose()
    assert not creator.is_alive()
    assert dropped >= 3

    codes = [code for code, _ in creator.answers]
    assert codes == [201] * 60, [a for a in creator.answers if a[0] != 201]
    created = creator.created()
    check_nothing_lost(world.api, world.net_id, created)
    _all_active(world, created)
    assert [world.lease(p) for p in created] == [ip_of(p) for p in created]
    logs = world.engine.logs()
    assert "Lost the DHCP manager lock" in logs
    wait_for(
        lambda: world.engine.logs().count("runs the DHCP manager") >= 2,
        30,
        "the leader lock taken again",
    )
    assert httpx.get(world.engine.url + "/v2.0/networks", timeout=10).status_code == 200
    record(
        "fault",
        "PostgreSQL connections of the engine terminated (3 times) while ports are created",
        requests=60,
        answered_201=codes.count(201),
        connections_dropped=dropped,
        lost=0,
        duplicated=0,
        leased_exactly=len(created),
    )
