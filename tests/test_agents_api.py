"""Neutron's DHCP agent scheduler views over the agents' heartbeats."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from ipam.api.agents import agent_id
from ipam.store import Store


def _beat(store: Store, host: str, net_ids: list[str], ports: int = 3) -> None:
    status = {
        "host": host,
        "started_at": time.time(),
        "networks": [{"id": n, "ports": ports, "dnsmasq": "running"} for n in net_ids],
    }
    store.agent_heartbeat(host, net_ids, status, time.time())


def test_agents_and_scheduler_views(api: TestClient, sqlite_store: Store) -> None:
    net = api.post("/v2.0/networks", json={"network": {"name": "net1"}}).json()["network"]
    other = api.post("/v2.0/networks", json={"network": {"name": "net2"}}).json()["network"]
    _beat(sqlite_store, "host-a", [net["id"]])
    _beat(sqlite_store, "host-b", [net["id"], other["id"]])

    agents = api.get("/v2.0/agents").json()["agents"]
    assert [a["host"] for a in agents] == ["host-a", "host-b"]
    assert all(a["alive"] and a["agent_type"] == "DHCP agent" for a in agents)
    assert agents[1]["configurations"]["networks"] == 2
    assert agents[1]["configurations"]["ports"] == 6

    serving = api.get(f"/v2.0/networks/{net['id']}/dhcp-agents").json()["agents"]
    assert sorted(a["host"] for a in serving) == ["host-a", "host-b"]
    only_b = api.get(f"/v2.0/networks/{other['id']}/dhcp-agents").json()["agents"]
    assert [a["host"] for a in only_b] == ["host-b"]

    b = agent_id("host-b")
    assert api.get(f"/v2.0/agents/{b}").json()["agent"]["host"] == "host-b"
    nets = api.get(f"/v2.0/agents/{b}/dhcp-networks").json()["networks"]
    assert sorted(n["id"] for n in nets) == sorted([net["id"], other["id"]])
    assert [a["host"] for a in api.get("/v2.0/agents?host=host-a").json()["agents"]] == ["host-a"]


def test_a_silent_agent_is_not_alive_and_unknowns_are_404(
    api: TestClient, sqlite_store: Store
) -> None:
    net = api.post("/v2.0/networks", json={"network": {"name": "net1"}}).json()["network"]
    sqlite_store.agent_heartbeat("host-old", [net["id"]], {"networks": []}, time.time() - 600)
    with sqlite_store.db.engine.begin() as conn:
        conn.exec_driver_sql("update dhcp_agents set last_seen = last_seen - 600")
    [agent] = api.get("/v2.0/agents").json()["agents"]
    assert agent["alive"] is False
    missing = api.get("/v2.0/agents/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["NeutronError"]["message"]
    assert api.get("/v2.0/networks/nope/dhcp-agents").status_code == 404
