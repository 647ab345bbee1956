"""The DHCP manager is never stalled by one host: its Host.setDHCP calls run side by
side, and a host whose host service hangs (heartbeats still arriving) loses its
networks after host_down_time. A host gone for release_after loses its DHCP ports.
Real store (SQLite), real filesystem bus, the manager itself; the hosts are bus
consumers answering JSON-RPC as the host service does, one of which stops answering
as a SIGSTOPped host service would."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipam.bus import contracts
from ipam.bus.messaging import Bus
from ipam.dhcp.leader import LeaderLock
from ipam.dhcp.manager import DhcpManager
from ipam.polling import wait_for
from ipam.store import Store
from tests.conftest import make_store

HOST_DOWN_TIME = 2.0
RELEASE_AFTER = 3.0


class FakeHost:
    """Answers Host.setDHCP on its queue, until hung (then it holds the request)."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus, self.name = bus, name
        self.running = threading.Event()
        self.running.set()
        self.stop = threading.Event()
        self.calls: list[tuple[float, list[str]]] = []
        self.thread = threading.Thread(
            target=bus.consume, args=(contracts.host_queue(name), self.on_message, self.stop)
        )
        self.thread.start()

    def on_message(self, env: contracts.Envelope, body: Any) -> None:
        self.running.wait()  # a hung host service holds the request
        if self.stop.is_set():
            return
        ids = [n["id"] for n in body.params["networks"]]
        self.calls.append((time.monotonic(), ids))
        reply = contracts.JsonRpcResponse(jsonrpc="2.0", id=body.id, result={"networks": ids})
        self.bus.reply(env, contracts.make("jsonrpc.reply", reply, self.name))

    def close(self) -> None:
        self.stop.set()
        self.running.set()
        self.thread.join(10)


@pytest.fixture
def world(
    tmp_path: Path,
) -> Iterator[tuple[Store, DhcpManager, dict[str, FakeHost], dict[str, list[str]]]]:
    """The store, the manager, the two hosts, and the bridges each host's heartbeats
    report (a host taken out of it beats no more)."""
    store = make_store(f"sqlite:///{tmp_path}/ipam.sqlite")
    bus = Bus(f"filesystem://{tmp_path}/bus")
    hosts = {name: FakeHost(bus, name) for name in ("a-hangs", "b-answers")}
    stop = threading.Event()
    beating = {"a-hangs": ["br1", "br3"], "b-answers": ["br1", "br2", "br3", "br4"]}

    def heartbeats() -> None:  # both keep beating, as a hung host's may
        while not stop.is_set():
            for name, bridges in list(beating.items()):
                store.host_heartbeat(name, bridges, 1.0)
            stop.wait(0.2)

    beat = threading.Thread(target=heartbeats)
    beat.start()
    manager = DhcpManager(
        store,
        bus,
        LeaderLock(store.db, str(tmp_path)),
        HOST_DOWN_TIME,
        grace=0,
        interval=0.2,
        call_timeout=5.0,  # longer than host_down_time, as in production (30 s)
        release_after=RELEASE_AFTER,
    )
    manager.start()
    try:
        yield store, manager, hosts, beating
    finally:
        manager.stop()
        stop.set()
        beat.join()
        for host in hosts.values():
            host.close()
        bus.close()
        store.db.dispose()


def queued(bus: Bus, queue: str) -> int:
    """Message files of queue on the filesystem bus (in its queue's directory)."""
    folder = os.path.join(bus.url[len("filesystem://") :], queue)
    if not os.path.isdir(folder):
        return 0
    return sum(1 for n in os.listdir(folder) if n.partition(".")[2] == f"{queue}.msg")


def network(store: Store, bridge: str) -> str:
    net = store.create_network({"name": bridge, "vdsm_name": bridge, "ha_count": 1})
    store.create_subnet({"network_id": net["id"], "cidr": f"10.{bridge[2:]}.0.0/24"})
    return str(net["id"])


def confirmed(store: Store, host: str) -> set[str]:
    row = next((h for h in store.list_hosts() if h["name"] == host), None)
    return {n["id"] for n in (row or {}).get("dhcp_confirmed") or []}


def test_a_hung_host_stalls_no_other_and_loses_its_networks(world) -> None:  # type: ignore[no-untyped-def]
    store, manager, hosts, _beating = world
    n1 = network(store, "br1")  # both carry br1: "a-hangs" gets it (by name)
    n2 = network(store, "br2")  # only "b-answers" carries br2
    wait_for(lambda: confirmed(store, "a-hangs") == {n1}, 10, "n1 placed on a-hangs")
    wait_for(lambda: confirmed(store, "b-answers") == {n2}, 10, "n2 placed on b-answers")

    hosts["a-hangs"].running.clear()  # its host service hangs; heartbeats go on
    hung_at = time.monotonic()
    n3 = network(store, "br3")  # a tie: placed on a-hangs, whose call hangs
    wait_for(
        lambda: manager.silent("a-hangs") is False and "a-hangs" in manager.calling(),
        5,
        "a call to a-hangs in flight",
    )
    started = time.monotonic()
    n4 = network(store, "br4")
    wait_for(lambda: n4 in confirmed(store, "b-answers"), 1.5, "b-answers served at once")
    print(f"b-answers confirmed in {time.monotonic() - started:.2f}s while a-hangs hangs")

    # Owing an answer for host_down_time, a-hangs is placed on as if down.
    wait_for(
        lambda: confirmed(store, "b-answers") == {n1, n2, n3, n4},
        HOST_DOWN_TIME + 3,
        "a-hangs' networks moved to b-answers",
    )
    moved = time.monotonic() - hung_at
    print(f"a-hangs' networks moved {moved:.2f}s after it hung")
    assert moved >= HOST_DOWN_TIME
    assert manager.silent("a-hangs")

    hosts["a-hangs"].running.set()  # it answers again: a candidate once more
    wait_for(lambda: not manager.silent("a-hangs"), 10, "a-hangs answering again")
    wait_for(lambda: confirmed(store, "a-hangs") == set(), 10, "a-hangs told its empty list")


def test_a_host_gone_for_release_after_loses_its_dhcp_ports(world) -> None:  # type: ignore[no-untyped-def]
    store, manager, _hosts, beating = world
    n1 = network(store, "br1")
    wait_for(lambda: confirmed(store, "a-hangs") == {n1}, 10, "n1 placed on a-hangs")
    port = store.ensure_dhcp_port(n1, "a-hangs")  # as its agent's first sync makes it
    assert port is not None and store.dhcp_port_networks("a-hangs") == [n1]
    address = port["fixed_ips"][0]["ip_address"]

    # An event for its agent that nobody will consume: gone with its queue, later.
    bus = manager.bus
    event = contracts.make("engine.started", contracts.EngineStarted(started_at=1.0), "engine")
    bus.publish(contracts.agent_queue("a-hangs"), event)
    assert queued(bus, contracts.agent_queue("a-hangs")) == 1

    del beating["a-hangs"]  # the host is gone: no more heartbeats
    gone_at = time.monotonic()
    wait_for(lambda: confirmed(store, "b-answers") == {n1}, HOST_DOWN_TIME + 3, "n1 moved")
    assert store.dhcp_port_networks("a-hangs") == [n1]  # kept while it may come back
    wait_for(
        lambda: store.dhcp_port_networks("a-hangs") == [],
        RELEASE_AFTER + 3,
        "a-hangs' DHCP port released",
    )
    assert time.monotonic() - gone_at >= RELEASE_AFTER - 0.5  # (heartbeats every 0.2 s)
    held = {f["ip_address"] for p in store.list_ports() for f in p["fixed_ips"]}
    assert address not in held
    wait_for(lambda: queued(bus, contracts.agent_queue("a-hangs")) == 0, 5, "its queue gone")
    assert queued(bus, contracts.agent_queue("b-answers")) == 0  # (never had one)

    beating["a-hangs"] = ["br1", "br3"]  # it comes back: a new DHCP port
    again = store.ensure_dhcp_port(n1, "a-hangs")
    assert again is not None and again["id"] != port["id"]
