"""Faults of the message bus (issue 7), with every part real: RabbitMQ restarted
while ports are being created. Nothing may be lost or duplicated, the agent must
reconnect and resync, acknowledgements resume and DHCP serves every port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ipam.polling import wait_for
from tests.agentlab import ip_of
from tests.faultlab import (
    PortCreator,
    check_nothing_lost,
    rabbitmq_vhost,
    record,
    restart_rabbitmq,
)

pytestmark = [pytest.mark.root, pytest.mark.rabbitmq]


@pytest.fixture
def amqp_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


def test_rabbitmq_restarted_while_ports_are_created(
    amqp_url: str, world_factory, tmp_path: Path
) -> None:
    world = world_factory(amqp_url, engine_conf="[dhcp]\nready_timeout = 25\n")
    world.serve()
    world.agent.start()
    world.wait_serving()
    agent_pid = world.agent.proc.pid

    creator = PortCreator(world.engine.url, world.net_id, 40, pause=0.1)
    creator.start()
    wait_for(lambda: len(creator.answers) >= 5, 60, "ports before the restart")
    before = len(creator.answers)
    away = restart_rabbitmq()
    answered_while_away = len(creator.answers) - before
    creator.join(300)
    assert not creator.is_alive()

    codes = [code for code, _ in creator.answers]
    assert codes == [201] * 40, creator.answers  # every request answered, none lost
    created = creator.created()
    check_nothing_lost(world.api, world.net_id, created)
    wait_for(
        lambda: all(world.status(p["id"]) == "ACTIVE" for p in created),
        60,
        f"acknowledgements to resume\n{world.agent.logs()[-3000:]}",
        interval=0.2,
    )
    assert world.agent.proc.pid == agent_pid and world.agent.proc.poll() is None
    logs = world.agent.logs()
    assert "again" in logs and "Resyncing" in logs  # reconnected, then resynced
    leased = [world.lease(p) for p in created]
    assert leased == [ip_of(p) for p in created]  # DHCP serves every port, exactly
    record(
        "fault",
        "RabbitMQ restarted while ports are created",
        requests=40,
        answered_201=codes.count(201),
        answered_while_broker_away=answered_while_away,
        broker_away_s=round(away, 1),
        lost=0,
        duplicated=0,
        leased_exactly=len(leased),
    )
