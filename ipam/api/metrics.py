"""The engine's Prometheus metrics, served at ``/metrics`` (text format, the API's
authentication): one scrape target for the whole deployment, as the agents' figures
reach the engine by their heartbeats.

What is read from the store at each scrape, in one read transaction: per subnet the
addresses (total, used, free), per network its ports by status and its DHCP servers
(wanted: the HA count; serving: live agents whose dnsmasq runs it), per host whether
it is alive and how many networks its agent serves, per network its leases by state.
What this engine process counts: the port-create histogram (POST to answer,
readiness included), the bus outbox depth, the failovers its DHCP manager made (a
placement moved off a down host), and the declines and unreadable DHCP log lines
the agents reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ipam.api.auth import require_token
from ipam.store import Store
from ipam.store.hosts import is_alive

#: Seconds: a port create answers in milliseconds when a DHCP server is up, and up to
#: [dhcp] ready_timeout (at most 25 s) when none is.
PORT_CREATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 30)


class _StoreCollector(Collector):
    def __init__(
        self,
        store: Store,
        host_down_time: float,
        outbox_depth: Callable[[], int] | None,
        failovers: Callable[[], int] | None,
    ) -> None:
        self.store, self.host_down_time = store, host_down_time
        self.outbox_depth, self.failovers = outbox_depth, failovers

    def collect(self) -> Iterator[Metric]:
        view = self.store.metrics_view()
        now = time.time()
        addresses = GaugeMetricFamily(
            "ovirt_ipam_subnet_addresses",
            "Addresses of a subnet's allocation pools, by state (total, used, free).",
            labels=["network_id", "subnet_id", "ip_version", "state"],
        )
        for sub in view["subnets"]:
            ids = [sub["network_id"], sub["subnet_id"], str(sub["ip_version"])]
            total, used = sub["total_ips"], sub["used_ips"]
            for state, value in (("total", total), ("used", used), ("free", total - used)):
                addresses.add_metric([*ids, state], float(value))
        yield addresses
        ports = GaugeMetricFamily(
            "ovirt_ipam_ports", "Ports of a network by status.", labels=["network_id", "status"]
        )
        for (net_id, status), count in sorted(view["ports"].items()):
            ports.add_metric([net_id, status], float(count))
        yield ports
        servers = GaugeMetricFamily(
            "ovirt_ipam_network_dhcp_servers",
            "DHCP servers of a network: wanted (its HA count) and serving (live agents "
            "whose dnsmasq runs it).",
            labels=["network_id", "kind"],
        )
        serving: dict[str, int] = {}
        agents_up = GaugeMetricFamily(
            "ovirt_ipam_dhcp_agent_up", "Whether a host's DHCP agent is alive.", labels=["host"]
        )
        served = GaugeMetricFamily(
            "ovirt_ipam_dhcp_agent_networks",
            "Networks a host's DHCP agent serves (dnsmasq running).",
            labels=["host"],
        )
        held = GaugeMetricFamily(
            "ovirt_ipam_dhcp_agent_ports",
            "Ports a host's DHCP agent holds in its running dnsmasqs, all acknowledged "
            "(from its heartbeat).",
            labels=["host"],
        )
        lag = GaugeMetricFamily(
            "ovirt_ipam_dhcp_agent_ack_lag_seconds",
            "How far a host's DHCP agent is behind: the oldest port change it has not "
            "acknowledged, or its slowest acknowledgement since its last heartbeat (from "
            "its heartbeat; agents that do not report it are left out).",
            labels=["host"],
        )
        for agent in view["agents"]:
            alive = is_alive(agent["last_seen"], self.host_down_time, now)
            reports = (agent.get("status") or {}).get("networks", [])
            running = [n for n in reports if n.get("dnsmasq") == "running"]
            agents_up.add_metric([agent["host"]], float(alive))
            served.add_metric([agent["host"]], float(len(running) if alive else 0))
            holding = sum(n.get("ports", 0) for n in running) if alive else 0
            held.add_metric([agent["host"]], float(holding))
            lags = [n["ack_lag_s"] for n in reports if n.get("ack_lag_s") is not None]
            if alive and lags:
                lag.add_metric([agent["host"]], float(max(lags)))
            for net in running if alive else []:
                serving[net["id"]] = serving.get(net["id"], 0) + 1
        for net in view["networks"]:
            servers.add_metric([net["id"], "wanted"], float(net["ha_count"]))
            servers.add_metric([net["id"], "serving"], float(serving.get(net["id"], 0)))
        yield servers
        yield agents_up
        yield served
        yield held
        yield lag
        hosts_up = GaugeMetricFamily(
            "ovirt_ipam_host_up", "Whether a host's host service is alive.", labels=["host"]
        )
        for host in view["hosts"]:
            alive = is_alive(host["last_seen"], self.host_down_time, now)
            hosts_up.add_metric([host["name"]], float(alive))
        yield hosts_up
        leases = GaugeMetricFamily(
            "ovirt_ipam_dhcp_leases",
            "Clients of a network by what a DHCP server last saw of them (one per client "
            "and serving host): offered, bound, nak, released, declined, expired.",
            labels=["network_id", "state"],
        )
        for (net_id, state), count in sorted(view.get("leases", {}).items()):
            leases.add_metric([net_id, state], float(count))
        yield leases
        if self.outbox_depth is not None:
            yield GaugeMetricFamily(
                "ovirt_ipam_bus_outbox_messages",
                "Events to the agents this engine holds until the bus takes them.",
                value=float(self.outbox_depth()),
            )
        if self.failovers is not None:
            yield CounterMetricFamily(
                "ovirt_ipam_dhcp_failovers",
                "Placements this engine's DHCP manager moved off a host that was down.",
                value=float(self.failovers()),
            )


class Metrics:
    """One engine's metrics, in a registry of its own (an app per registry)."""

    def __init__(
        self,
        store: Store,
        host_down_time: float,
        outbox_depth: Callable[[], int] | None = None,
        failovers: Callable[[], int] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.port_create = Histogram(
            "ovirt_ipam_port_create_seconds",
            "POST /v2.0/ports, from the request to the answer (the readiness wait "
            "included), for every port created.",
            buckets=PORT_CREATE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(store, host_down_time, outbox_depth, failovers))
        self.declines = Counter(
            "ovirt_ipam_dhcp_declines",
            "DHCPDECLINEs the agents reported (a VM found its address in use).",
            ["network_id"],
            registry=self.registry,
        )
        self.lease_lines_unparsed = Counter(
            "ovirt_ipam_dhcp_lease_log_lines_unparsed",
            "DHCP log lines of dnsmasq the agents did not understand (never used).",
            registry=self.registry,
        )

    def leases(self, network_id: str, declines: int, unparsed: int) -> None:
        """Told of every lease batch by the bus server (ipam.dhcp.bus_server)."""
        if declines:
            self.declines.labels(network_id).inc(declines)
        if unparsed:
            self.lease_lines_unparsed.inc(unparsed)

    def request(self, method: str, path: str, status: int, seconds: float) -> None:
        """Told of every API request by the access log (ipam.api.middleware)."""
        if method == "POST" and status == 201 and path.rstrip("/") == "/v2.0/ports":
            self.port_create.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


router = APIRouter(tags=["metrics"], dependencies=[Depends(require_token)])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    found: Any = request.app.state.metrics
    return Response(found.render(), media_type=CONTENT_TYPE_LATEST)
