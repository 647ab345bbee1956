"""The store's side of the DHCP agents, on SQLite and PostgreSQL: subscriptions,
heartbeats, DHCP ports, acknowledgements, and the notifier that publishes the
store's changes to the subscribed agents (on a real filesystem bus)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipam.bus import contracts as C
from ipam.bus.messaging import Bus
from ipam.dhcp.notifier import Notifier
from ipam.polling import wait_for
from ipam.store import Store


@pytest.fixture
def net(store: Store) -> tuple[dict, dict]:
    net = store.create_network({"name": "red"})
    sub = store.create_subnet({"network_id": net["id"], "cidr": "10.9.0.0/24"})
    return net, sub


def test_subscriptions_heartbeats_release(store: Store, net: tuple) -> None:
    n, _ = net
    other = str(uuid.uuid4())
    assert store.subscribe_agent("h1", [n["id"]]) == [n["id"]]
    assert store.subscribe_agent("h1", [other, n["id"]]) == [n["id"], other]
    store.subscribe_agent("h2", [n["id"]])
    assert store.agent_subscriptions() == {n["id"]: ["h1", "h2"], other: ["h1"]}
    store.agent_heartbeat("h1", [other], {"host": "h1", "networks": []}, 123.5)
    (h1, h2) = store.list_agents()
    assert h1["networks"] == [other] and h1["started_at"] == 123.5 and h1["status"]["host"] == "h1"
    assert h2["networks"] == [n["id"]] and h2["status"] is None
    port = store.ensure_dhcp_port(n["id"], "h2")
    assert port is not None
    gone = store.release_network("h2", n["id"])
    assert [p["id"] for p in gone] == [port["id"]]
    assert store.list_ports({"device_owner": ["network:dhcp"]}) == []
    assert store.agent_subscriptions() == {other: ["h1"]}


def test_dhcp_port_follows_the_dhcp_subnets(store: Store, net: tuple) -> None:
    n, sub = net
    port = store.ensure_dhcp_port(n["id"], "h1")
    assert port["device_owner"] == "network:dhcp" and port["binding:host_id"] == "h1"
    assert port["device_id"] == "dhcp-h1" and port["name"] == "dhcp-h1"
    assert [f["subnet_id"] for f in port["fixed_ips"]] == [sub["id"]]
    assert store.ensure_dhcp_port(n["id"], "h1") == port  # unchanged
    second = store.create_subnet({"network_id": n["id"], "cidr": "10.10.0.0/24"})
    off = store.create_subnet({"network_id": n["id"], "cidr": "10.11.0.0/24", "enable_dhcp": False})
    again = store.ensure_dhcp_port(n["id"], "h1")
    assert again["id"] == port["id"]
    assert {f["subnet_id"] for f in again["fixed_ips"]} == {sub["id"], second["id"]}
    assert port["fixed_ips"][0] in again["fixed_ips"]  # its first IP kept
    assert off["id"] not in {f["subnet_id"] for f in again["fixed_ips"]}
    bare = store.create_network({"name": "bare"})
    store.create_subnet({"network_id": bare["id"], "cidr": "10.12.0.0/24", "enable_dhcp": False})
    assert store.ensure_dhcp_port(bare["id"], "h1") is None
    state = store.network_state(n["id"])
    assert [p["id"] for p in state["ports"]] == [port["id"]]
    assert len(state["subnets"]) == 3


def test_acks_activate_the_current_revision_only(store: Store, net: tuple) -> None:
    n, _ = net
    p1 = store.create_port({"network_id": n["id"]})
    p2 = store.update_port(store.create_port({"network_id": n["id"]})["id"], {"name": "x"})
    elsewhere = store.create_network({"name": "blue"})
    p3 = store.create_port({"network_id": elsewhere["id"]})
    acked = {p1["id"]: 1, p2["id"]: 1, p3["id"]: 1, str(uuid.uuid4()): 1}
    recorded, activated = store.record_acks("h1", n["id"], acked)
    assert recorded == 2 and activated == [p1["id"]]
    assert store.get_port(p1["id"])["status"] == "ACTIVE"
    assert store.get_port(p1["id"])["revision_number"] == 1
    assert store.get_port(p2["id"])["status"] == "DOWN"
    assert store.get_port(p3["id"])["status"] == "DOWN"
    assert store.record_acks("h1", n["id"], {p2["id"]: 2}) == (1, [p2["id"]])
    assert [a["revision_number"] for a in store.port_acks(p2["id"])] == [2]
    assert store.record_acks("h2", n["id"], {p1["id"]: 1}) == (1, [])  # already ACTIVE
    assert [a["host"] for a in store.port_acks(p1["id"])] == ["h1", "h2"]
    assert store.set_port_status(p1["id"], 1, "DOWN")
    assert not store.set_port_status(p1["id"], 7, "ACTIVE")
    store.delete_port(p1["id"])
    assert store.port_acks(p1["id"]) == []


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[Bus]:
    bus = Bus(f"filesystem://{tmp_path}/bus")
    yield bus
    bus.close()


def test_notifier_publishes_to_subscribed_agents_only(store: Store, bus: Bus) -> None:
    notifier = Notifier(bus, store.db)
    st = Store(store.db, notifier=notifier)
    red = st.create_network({"name": "red"})
    blue = st.create_network({"name": "blue"})
    st.subscribe_agent("h1", [red["id"]])
    st.subscribe_agent("h2", [red["id"], blue["id"]])
    got: dict[str, list[tuple[str, object]]] = {"h1": [], "h2": []}
    stops = []
    for host in got:
        stop = threading.Event()
        stops.append(stop)
        threading.Thread(
            target=bus.consume,
            args=(C.agent_queue(host), lambda e, b, h=host: got[h].append((e.type, b)), stop),
            daemon=True,
        ).start()
    try:
        sub = st.create_subnet({"network_id": red["id"], "cidr": "10.9.0.0/24"})
        port = st.create_port({"network_id": red["id"]})
        blue_port = st.create_port({"network_id": blue["id"]})
        st.update_subnet(sub["id"], {"name": "s"})
        st.delete_port(port["id"])
        st.delete_port(blue_port["id"])
        st.delete_subnet(sub["id"])
        st.update_network(red["id"], {"name": "r"})
        st.delete_network(red["id"])
        red_events = [
            "subnet.update",
            "port.update",
            "subnet.update",
            "port.delete",
            "subnet.delete",
            "network.update",
            "network.delete",
        ]
        wait_for(lambda: len(got["h1"]) >= 7 and len(got["h2"]) >= 9, 20, "events")
        assert [t for t, _ in got["h1"]] == red_events
        assert [t for t, _ in got["h2"]] == [
            "subnet.update",
            "port.update",
            "port.update",
            "subnet.update",
            "port.delete",
            "port.delete",
            "subnet.delete",
            "network.update",
            "network.delete",
        ]
        assert got["h1"][1][1].port.id == port["id"]
        assert got["h1"][3][1].port.fixed_ips == got["h1"][1][1].port.fixed_ips
        assert got["h1"][6][1].revision_number == 2
        # A heartbeat through this store changes the subscription at once (no stale cache).
        st.agent_heartbeat("h1", [blue["id"]], {}, 1.0)
        late = st.create_port({"network_id": blue["id"]})
        wait_for(lambda: len(got["h1"]) == 8, 20, "the event after the heartbeat")
        assert got["h1"][7][1].port.id == late["id"]
    finally:
        for stop in stops:
            stop.set()


def test_store_works_when_publishing_fails(store: Store, bus: Bus) -> None:
    st = Store(store.db, notifier=Notifier(bus, store.db))
    red = st.create_network({"name": "red"})
    st.subscribe_agent("h1", [red["id"]])
    bus.close()  # every publication fails from now on
    port = st.create_port({"network_id": red["id"]})
    st.delete_port(port["id"])
    st.delete_network(red["id"])


def test_only_a_heartbeat_that_changes_a_subscription_drops_the_caches(
    store: Store, net: tuple
) -> None:
    """Most heartbeats repeat what the agent serves: they must not make every port
    event read all the agents again (bench.scale: one drop per heartbeat)."""
    n, _ = net

    class Listener:
        def __init__(self) -> None:
            self.drops = 0

        def __getattr__(self, name: str) -> object:
            return lambda *args: None

        def invalidate(self) -> None:
            self.drops += 1

    listener = Listener()
    store.notifier = listener  # type: ignore[assignment]
    beat = {"networks": [{"id": n["id"], "ports": 0, "dnsmasq": "running"}]}
    store.agent_heartbeat("h-cache", [n["id"]], beat, 1.0)  # a new agent
    assert listener.drops == 1
    for _ in range(3):
        store.agent_heartbeat("h-cache", [n["id"]], beat, 1.0)
    assert listener.drops == 1
    store.agent_heartbeat("h-cache", [], {"networks": []}, 1.0)  # it stopped serving
    assert listener.drops == 2
