"""Neutron's DHCP agent scheduler views: ``/v2.0/agents``,
``/v2.0/networks/{id}/dhcp-agents`` and ``/v2.0/agents/{id}/dhcp-networks``, from the
agents' subscriptions and heartbeats. An agent's id is derived from its host name."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from ipam.api.auth import require_token
from ipam.exceptions import NotFound
from ipam.store.hosts import is_alive

router = APIRouter(tags=["agents"], dependencies=[Depends(require_token)])
_NS = uuid.UUID("5b3c3f0e-8f1e-4d0e-9c51-6f0b2a7f1d10")


def agent_id(host: str) -> str:
    return str(uuid.uuid5(_NS, f"dhcp-agent:{host}"))


def _ts(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _view(agent: dict[str, Any], down_time: float) -> dict[str, Any]:
    status = agent.get("status") or {}
    served = status.get("networks", [])
    return {
        "id": agent_id(agent["host"]),
        "agent_type": "DHCP agent",
        "binary": "ovirt-ipam-dhcp-agent",
        "host": agent["host"],
        "topic": "dhcp_agent",
        "alive": is_alive(agent["last_seen"], down_time, time.time()),
        "admin_state_up": True,
        "heartbeat_timestamp": _ts(agent["last_seen"]),
        "started_at": _ts(agent.get("started_at")),
        "created_at": _ts(agent.get("started_at")),
        "availability_zone": None,
        "description": None,
        "resources_synced": None,
        "configurations": {
            "networks": len(agent["networks"]),
            "ports": sum(n.get("ports", 0) for n in served),
            "dnsmasq": {n["id"]: n.get("dnsmasq") for n in served},
        },
    }


def _agents(request: Request) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the stored agent, its Neutron view) for every agent."""
    down = request.app.state.host_down_time
    return [(a, _view(a, down)) for a in request.app.state.store.list_agents()]


def _find(request: Request, agent_id_: str) -> tuple[dict, dict]:
    for raw, view in _agents(request):
        if view["id"] == agent_id_:
            return raw, view
    raise NotFound(f"Agent {agent_id_} could not be found.")


@router.get("/v2.0/agents", summary="List agents")
def list_agents(request: Request) -> dict:
    wanted = {k: v for k, v in request.query_params.items() if k != "fields"}
    out = []
    for _, view in _agents(request):
        if all(str(view.get(k)).lower() == v.lower() for k, v in wanted.items()):
            out.append(view)
    return {"agents": out}


@router.get("/v2.0/agents/{agent_id_}", summary="Show an agent")
def show_agent(request: Request, agent_id_: str) -> dict:
    return {"agent": _find(request, agent_id_)[1]}


@router.get("/v2.0/agents/{agent_id_}/dhcp-networks", summary="Networks a DHCP agent serves")
def agent_networks(request: Request, agent_id_: str) -> dict:
    raw, _ = _find(request, agent_id_)
    store = request.app.state.store
    return {"networks": store.list_networks({"id": raw["networks"]}) if raw["networks"] else []}


@router.get("/v2.0/networks/{network_id}/dhcp-agents", summary="DHCP agents serving a network")
def network_agents(request: Request, network_id: str) -> dict:
    request.app.state.store.get_network(network_id)  # 404 for an unknown network
    return {"agents": [view for raw, view in _agents(request) if network_id in raw["networks"]]}
