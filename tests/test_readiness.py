"""The readiness policies, with the store stubbed at its seam (the real flow is
tested with real agents in test_port_ready and test_failover)."""

from __future__ import annotations

import time

from ipam.readiness import Readiness


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

    def list_agents(self) -> list[dict]:
        return self.agents

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
