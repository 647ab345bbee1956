"""Publishes the store's committed changes to the DHCP agents serving each network.

An agent is subscribed to a network when its host's ``dhcp_agents`` row lists the
network (a sync request adds it, a heartbeat sets the list, a release removes it).
The subscriptions are cached for about a second; the bus server invalidates the
cache of its process whenever it changes them. Publishing never raises: the change
is committed, and an event the bus cannot take now waits in order in an Outbox.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ipam.bus import contracts
from ipam.bus.contracts import (
    DhcpOpt,
    FixedIp,
    HostRoute,
    NetworkEvent,
    NetworkInfo,
    PortEvent,
    PortState,
    SubnetEvent,
    SubnetState,
)
from ipam.bus.messaging import Bus
from ipam.bus.outbox import Outbox
from ipam.db.engine import Database
from ipam.store import agents
from ipam.store.dns import DnsDefaults

LOG = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
SENDER = "engine"


# -- store views -> contract models -------------------------------------------------------


def _served_name(port: dict[str, Any]) -> str | None:
    """The hostname the DHCP servers give the port: its dns_assignment's. A legacy
    dns_name (shown, not served: ipam.store.dns) has none, nor has a port without
    addresses (nothing to serve)."""
    assigned = port.get("dns_assignment") or []
    return assigned[0]["hostname"] if assigned else None


def _dhcp_opts(port: dict[str, Any]) -> list[DhcpOpt]:
    """The port's options; one the contract refuses (stored under older rules) is
    left out and logged, so the port itself still reaches the agents."""
    out = []
    for opt in port.get("extra_dhcp_opts") or []:
        try:
            out.append(DhcpOpt(**opt))
        except (ValueError, TypeError) as exc:
            LOG.warning("Port %s: DHCP option %s not sent: %s", port["id"], opt, exc)
    return out


def port_state(port: dict[str, Any]) -> PortState:
    return PortState(
        id=port["id"],
        network_id=port["network_id"],
        mac_address=port["mac_address"],
        fixed_ips=[
            FixedIp(subnet_id=f["subnet_id"], ip_address=f["ip_address"]) for f in port["fixed_ips"]
        ],
        revision_number=port["revision_number"],
        device_owner=port["device_owner"],
        admin_state_up=port["admin_state_up"],
        dns_name=_served_name(port),
        extra_dhcp_opts=_dhcp_opts(port),
    )


def subnet_state(subnet: dict[str, Any]) -> SubnetState:
    return SubnetState(
        id=subnet["id"],
        cidr=subnet["cidr"],
        gateway_ip=subnet["gateway_ip"],
        enable_dhcp=subnet["enable_dhcp"],
        dns_nameservers=list(subnet["dns_nameservers"]),
        host_routes=[
            HostRoute(destination=r["destination"], nexthop=r["nexthop"])
            for r in subnet["host_routes"]
        ],
        revision_number=subnet["revision_number"],
        ip_version=subnet["ip_version"],
        ipv6_address_mode=subnet["ipv6_address_mode"],
        ipv6_ra_mode=subnet["ipv6_ra_mode"],
    )


def network_info(net: dict[str, Any], dns: DnsDefaults) -> NetworkInfo:
    """The network as agents serve it; dns: the [dns] defaults its view leaves open."""
    return NetworkInfo(
        id=net["id"],
        vdsm_name=net["vdsm_name"],
        mtu=net["mtu"],
        admin_state_up=net["admin_state_up"],
        revision_number=net["revision_number"],
        dhcp_lease_time=net["dhcp_lease_time"],
        dns_domain=dns.domain_of(net) or None,
        dns_service=net["dns_service"],
    )


class Notifier:
    """Store change -> event on the queue of every agent subscribed to its network."""

    def __init__(self, bus: Bus, db: Database) -> None:
        self.bus = bus
        self.db = db
        self.outbox = Outbox(bus)
        self._lock = threading.Lock()
        self._cache: dict[str, list[str]] | None = None
        self._cached_at = 0.0
        self._generation = 0
        #: Called after a network or subnet changed: wakes the DHCP manager (placement
        #: depends on HA counts, bridges and DHCP-enabled subnets).
        self.on_topology_change: Callable[[], None] | None = None

    # -- subscriptions --------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the cached subscriptions (they changed in this process)."""
        with self._lock:
            self._cache = None
            self._generation += 1

    def _load(self) -> dict[str, list[str]]:
        with self.db.read() as conn:
            return agents.subscriptions(conn)

    def subscribers(self, net_id: str) -> list[str]:
        """Hosts whose agents are subscribed to net_id (cached ~1 s)."""
        with self._lock:
            if self._cache is not None and time.monotonic() - self._cached_at < CACHE_SECONDS:
                return list(self._cache.get(net_id, []))
            generation = self._generation
        subs = self._load()
        with self._lock:
            # An invalidation while we read means what we read may predate it.
            if generation == self._generation:
                self._cache, self._cached_at = subs, time.monotonic()
        return list(subs.get(net_id, []))

    # -- events -------------------------------------------------------------------------

    def _publish(self, net_id: str, type_: str, build: Any) -> None:
        try:
            hosts = self.subscribers(net_id)
            if not hosts:
                LOG.debug("No agent subscribed to network %s for %s", net_id, type_)
                return
            body = build()
        except Exception:
            LOG.exception("Could not prepare %s for network %s", type_, net_id)
            return
        for host in hosts:
            try:
                env = contracts.make(type_, body, SENDER)
                self.outbox.send(contracts.agent_queue(host), env)
            except Exception as exc:
                LOG.error(
                    "Could not publish %s for network %s to host %s: %s: %s",
                    type_,
                    net_id,
                    host,
                    type(exc).__name__,
                    exc,
                )

    def port_changed(self, port: dict[str, Any]) -> None:
        self._publish(port["network_id"], "port.update", lambda: PortEvent(port=port_state(port)))

    def port_deleted(self, port: dict[str, Any]) -> None:
        self._publish(port["network_id"], "port.delete", lambda: PortEvent(port=port_state(port)))

    def subnet_changed(self, subnet: dict[str, Any]) -> None:
        self._subnet("subnet.update", subnet)
        self._topology_changed()

    def subnet_deleted(self, subnet: dict[str, Any]) -> None:
        self._subnet("subnet.delete", subnet)
        self._topology_changed()

    def _topology_changed(self) -> None:
        if self.on_topology_change is not None:
            self.on_topology_change()

    def _subnet(self, type_: str, subnet: dict[str, Any]) -> None:
        self._publish(
            subnet["network_id"],
            type_,
            lambda: SubnetEvent(
                network_id=subnet["network_id"],
                subnet_id=subnet["id"],
                revision_number=subnet["revision_number"],
            ),
        )

    def engine_started(self, started_at: float) -> None:
        """Tell every agent with subscriptions to resync: an engine that died between a
        commit and its event left that event unsent."""
        with self.db.read() as conn:
            hosts = sorted({h for subs in agents.subscriptions(conn).values() for h in subs})
        body = contracts.EngineStarted(started_at=started_at)
        for host in hosts:
            self.outbox.send(
                contracts.agent_queue(host), contracts.make("engine.started", body, SENDER)
            )
        LOG.info("Asked %d agent(s) to resync after this engine started", len(hosts))

    def network_changed(self, net: dict[str, Any]) -> None:
        self._publish(
            net["id"],
            "network.update",
            lambda: NetworkEvent(network_id=net["id"], revision_number=net["revision_number"]),
        )
        self._topology_changed()

    def network_deleted(self, net_id: str, revision: int) -> None:
        self._publish(
            net_id,
            "network.delete",
            lambda: NetworkEvent(network_id=net_id, revision_number=revision),
        )
        self._topology_changed()
