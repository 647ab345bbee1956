"""The readiness policies, with the store stubbed at its seam (the real flow is
tested with real agents in test_port_ready and test_failover)."""

from __future__ import annotations

import threading
import time

import pytest

from ipam.dhcp.readiness import Readiness


class _Store:
    def __init__(self, serving: list[str], acked: list[str]) -> None:
        now = time.time()
        self.agents = [
            {
                "host": h,
                "last_seen": now,
                "status": {"networks": [{"id": "n1", "dnsmasq": "running"}]},
            }
            for h in serving
        ]
        self.acked = acked
        self.network = {
            "id": "n1",
            "name": "ovirtmgmt",
            "admin_state_up": True,
            "ha_count": 1,
            "vdsm_name": "ovirtmgmt",
        }
        self.others: list[dict] = []  # other networks (their bridges)
        self.subnets = [{"network_id": "n1", "enable_dhcp": True}]
        self.hosts = [{"name": "h9", "bridges": ["ovirtmgmt"], "last_seen": now}]

    def list_agents(self) -> list[dict]:
        return self.agents

    def get_network(self, _net_id: str) -> dict:
        return self.network

    def list_networks(self, wanted: dict) -> list[dict]:
        return [n for n in self.others if n["vdsm_name"] in wanted["vdsm_name"]]

    def networks_with_dhcp_subnets(self, net_ids: list[str]) -> set[str]:
        return {s["network_id"] for s in self.subnets if s["enable_dhcp"]} & set(net_ids)

    def list_hosts(self) -> list[dict]:
        return self.hosts

    def port_acks(self, _port_id: str) -> list[dict]:
        return [{"host": h, "revision_number": 1} for h in self.acked]


PORT = {"id": "p1", "network_id": "n1", "revision_number": 1, "status": "DOWN"}


def test_any_is_met_by_one_all_needs_every_serving_host() -> None:
    store = _Store(["h1", "h2"], ["h2"])
    assert Readiness(store, "any", 0.2).wait(PORT)["status"] == "ACTIVE"  # type: ignore[arg-type]
    partial = Readiness(store, "all", 0.2).wait(PORT)  # type: ignore[arg-type]
    assert partial["status"] == "DOWN" and partial["dhcp_ready_hosts"] == ["h2"]
    assert "every serving DHCP server" in partial["dhcp_status_reason"]
    store.acked = ["h1", "h2"]
    full = Readiness(store, "all", 0.2).wait(PORT)  # type: ignore[arg-type]
    assert full["status"] == "ACTIVE" and full["dhcp_ready_hosts"] == ["h1", "h2"]


def test_acks_of_other_revisions_or_dead_hosts_do_not_count() -> None:
    store = _Store(["h1"], [])
    store.agents.append(
        {
            "host": "dead",
            "last_seen": time.time() - 600,
            "status": {"networks": [{"id": "n1", "dnsmasq": "running"}]},
        }
    )
    store.acked = ["dead"]
    answer = Readiness(store, "any", 0.2, host_down_time=6).wait(PORT)  # type: ignore[arg-type]
    assert answer["status"] == "DOWN" and answer["dhcp_serving_hosts"] == ["h1"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.network.update(admin_state_up=False), "administratively down"),
        (lambda s: s.network.update(ha_count=0), "HA count 0"),
        (lambda s: s.subnets[0].update(enable_dhcp=False), "no DHCP-enabled subnet"),
        (lambda s: s.hosts[0].update(bridges=["other"]), "No live host carries bridge ovirtmgmt"),
        (lambda s: s.hosts[0].update(last_seen=time.time() - 60), "No live host carries"),
        (
            lambda s: s.network.update(vdsm_name=None, name="VM Network"),
            "has no bridge (vdsm_name is null): neither provider:physical_network nor its name",
        ),
        (
            lambda s: (
                s.network.update(vdsm_name=None, name="x", **{"provider:physical_network": "br1"}),
                s.others.append({"id": "n2", "vdsm_name": "br1"}),
            ),
            "bridge br1 (from provider:physical_network) is the bridge of network n2",
        ),
    ],
)
def test_a_network_no_host_can_serve_answers_at_once(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    store = _Store([], [])
    change(store)
    woken = []
    readiness = Readiness(store, "any", 30, host_down_time=6, on_waiting=lambda: woken.append(1))  # type: ignore[arg-type]
    started = time.monotonic()
    answer = readiness.wait(PORT)
    assert time.monotonic() - started < 1
    assert answer["status"] == "DOWN" and reason in answer["dhcp_status_reason"]
    assert woken == []


def test_a_server_that_is_coming_is_waited_for() -> None:
    """Servable (a live host carries the bridge) but not served yet: the request
    wakes the manager and waits until a server comes up and loads the port."""
    store = _Store([], [])
    woken = threading.Event()
    readiness = Readiness(store, "any", 10, host_down_time=6, on_waiting=woken.set)  # type: ignore[arg-type]

    def server_comes_up() -> None:
        woken.wait(5)
        store.agents = _Store(["h9"], []).agents
        store.acked = ["h9"]
        readiness.acks_recorded()

    threading.Thread(target=server_comes_up, daemon=True).start()
    answer = readiness.wait(PORT)
    assert woken.is_set()
    assert answer["status"] == "ACTIVE" and answer["dhcp_ready_hosts"] == ["h9"]


def test_a_server_that_never_comes_is_reported_after_the_timeout() -> None:
    answer = Readiness(_Store([], []), "any", 0.3).wait(PORT)  # type: ignore[arg-type]
    assert answer["status"] == "DOWN" and "No DHCP server" in answer["dhcp_status_reason"]
    assert "started within 0.3s" in answer["dhcp_status_reason"]
