"""The IPAM store: every read and change of networks, subnets and ports.

One entry point for the REST API, the CLI, the bus server and the DHCP manager;
each call is one transaction, retried whole when it loses a race (ipam.db.engine).
Every committed change of a network, subnet or port is told to the change listener
(the engine's is ipam.dhcp.notifier, which publishes it to the DHCP agents serving
its network).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from ipam.db.engine import Database
from ipam.exceptions import InvalidInput
from ipam.store import (
    agents,
    availability,
    filters,
    hosts,
    leases,
    networks,
    ports,
    subnets,
    validators,
)
from ipam.store.dns import DnsDefaults
from ipam.store.port_list import PortList

LOG = logging.getLogger(__name__)

_SQL_FILTERS = {
    "network": {"id", "name", "vdsm_name"},
    "subnet": {"id", "name", "network_id", "cidr"},
    "port": {
        "id",
        "name",
        "network_id",
        "mac_address",
        "device_id",
        "device_owner",
        "binding:host_id",
    },
}


def _split(kind: str, wanted: dict[str, list[str]]) -> tuple[dict, dict]:
    sql = {k: v for k, v in wanted.items() if k in _SQL_FILTERS[kind]}
    if "mac_address" in sql:
        sql["mac_address"] = [v.lower() for v in sql["mac_address"]]
    rest = {k: v for k, v in wanted.items() if k not in sql}
    return sql, rest


def _with_leases(c: Connection, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each port with its current lease (joined by network and MAC) and the reason
    its DHCP is not right (ipam.store.leases)."""
    now = time.time()
    found = leases.for_ports(c, [(i["network_id"], i["mac_address"]) for i in items], now)
    for item in items:
        row = found.get((item["network_id"], item["mac_address"]))
        item["dhcp_lease"] = leases.view(row, now) if row is not None else None
        item["dhcp_status_reason"] = leases.status_reason(item, row, now)
    return items


class ChangeListener(Protocol):
    """Told of every committed change, after its commit (ipam.dhcp.notifier is the
    one the engine uses: it publishes the change to the DHCP agents)."""

    def network_changed(self, net: dict[str, Any]) -> None: ...
    def network_deleted(self, net_id: str, revision: int) -> None: ...
    def subnet_changed(self, subnet: dict[str, Any]) -> None: ...
    def subnet_deleted(self, subnet: dict[str, Any]) -> None: ...
    def port_changed(self, port: dict[str, Any]) -> None: ...
    def port_deleted(self, port: dict[str, Any]) -> None: ...
    def invalidate(self) -> None:
        """Which hosts serve which networks changed: forget what was derived from it."""


class Store:
    def __init__(
        self,
        db: Database,
        base_mac: str = "fa:16:3e:00:00:00",
        notifier: ChangeListener | None = None,
        dns: DnsDefaults | None = None,
    ) -> None:
        """dns: the [dns] configuration (ipam.config.dns_defaults); None: its defaults."""
        self.db = db
        self.mac_prefix = validators.base_mac_prefix(base_mac)
        self.notifier = notifier
        self.dns = dns or DnsDefaults()
        self.port_list = PortList(db, dns=self.dns)

    def _notify(self, tell: Callable[[ChangeListener], None]) -> None:
        """Tell the listener, after the commit; a failure is logged, never raised."""
        if self.notifier is None:
            return
        try:
            tell(self.notifier)
        except Exception:
            LOG.exception("Telling the DHCP agents of a change failed")

    # networks
    def create_network(self, attrs: dict[str, Any]) -> dict[str, Any]:
        net = self.db.write(lambda c: networks.create(c, attrs, self.dns))
        LOG.info(
            "Created network %s vdsm_name=%s ha_count=%d",
            net["id"],
            net["vdsm_name"],
            net["ha_count"],
        )
        self._notify(lambda n: n.network_changed(net))
        return net

    def get_network(self, net_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            return networks.show(c, net_id, self.dns)

    def list_networks(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        sql, rest = _split("network", wanted or {})
        with self.db.read() as c:
            return filters.apply(networks.list_(c, sql, self.dns), rest)

    def update_network(self, net_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        net = self.db.write(lambda c: networks.update(c, net_id, attrs, self.dns))
        LOG.info("Updated network %s revision=%d", net_id, net["revision_number"])
        self._notify(lambda n: n.network_changed(net))
        return net

    def delete_network(self, net_id: str) -> None:
        revision = self.db.write(lambda c: networks.delete(c, net_id))
        LOG.info("Deleted network %s", net_id)
        self._notify(lambda n: n.network_deleted(net_id, revision))

    # subnets
    def create_subnet(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sub = self.db.write(lambda c: subnets.create(c, attrs))
        LOG.info("Created subnet %s cidr=%s network=%s", sub["id"], sub["cidr"], sub["network_id"])
        self._notify(lambda n: n.subnet_changed(sub))
        return sub

    def get_subnet(self, subnet_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            return subnets.show(c, subnet_id)

    def list_subnets(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        sql, rest = _split("subnet", wanted or {})
        with self.db.read() as c:
            return filters.apply(subnets.list_(c, sql), rest)

    def networks_with_dhcp_subnets(self, net_ids: list[str]) -> set[str]:
        """Which of the networks have a DHCP-enabled subnet (one indexed read)."""
        with self.db.read() as c:
            return subnets.networks_with_dhcp(c, net_ids)

    def update_subnet(self, subnet_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        sub = self.db.write(lambda c: subnets.update(c, subnet_id, attrs))
        LOG.info("Updated subnet %s revision=%d", subnet_id, sub["revision_number"])
        self._notify(lambda n: n.subnet_changed(sub))
        return sub

    def delete_subnet(self, subnet_id: str) -> None:
        sub = self.db.write(lambda c: subnets.delete(c, subnet_id))
        LOG.info("Deleted subnet %s", subnet_id)
        self._notify(lambda n: n.subnet_deleted(sub))

    # ports
    def create_port(self, attrs: dict[str, Any]) -> dict[str, Any]:
        port = self.db.write(lambda c: ports.create(c, attrs, self.mac_prefix, self.dns))
        LOG.info(
            "Created port %s network=%s mac=%s ips=%s",
            port["id"],
            port["network_id"],
            port["mac_address"],
            ",".join(f["ip_address"] for f in port["fixed_ips"]),
        )
        self._notify(lambda n: n.port_changed(port))
        return port

    def port_counts(self) -> dict[str, int]:
        """network id -> number of ports, counted in the database."""
        with self.db.read() as c:
            return ports.counts(c)

    def get_port(self, port_id: str) -> dict[str, Any]:
        """The port with its lease: ``dhcp_lease`` (the current binding, and which
        host holds it; None: none seen) and ``dhcp_status_reason`` (None when right)."""
        with self.db.read() as c:
            return _with_leases(c, [ports.show(c, port_id, self.dns)])[0]

    def list_ports(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """Ports matching the filters, with their leases as get_port shows them when
        there is a filter; ``dhcp_lease_state`` filters on the lease's state ("none":
        no lease seen). Without a filter, exactly port_list_body's ports: that list is
        oVirt engine's hot path, kept encoded, and shows no leases (a lease changes far
        more often than a port)."""
        wanted = dict(wanted or {})
        states = wanted.pop("dhcp_lease_state", None)
        if states is not None:
            bad = [s for s in states if s not in (*leases.STATES, "none")]
            if bad:
                raise InvalidInput(
                    f"Invalid input for dhcp_lease_state. Reason: {bad[0][:40]!r} is not one "
                    f"of {', '.join((*leases.STATES, 'none'))}."
                )
        filtered = bool(wanted) or states is not None
        sql, rest = _split("port", wanted)
        with self.db.read() as c:
            items = filters.apply(ports.list_(c, sql, self.dns), rest)
            if filtered:
                items = _with_leases(c, items)
        if states is not None:
            items = [i for i in items if (i["dhcp_lease"] or {}).get("state", "none") in states]
        return items

    def port_list_body(self) -> tuple[bytes, ...]:
        """The JSON body of the unfiltered port list, ``{"ports": [...]}``, in pieces
        to be sent one after the other: the same ports, in the same order, as
        list_ports() with no filter (ipam.store.port_list)."""
        return self.port_list.body()

    def update_port(self, port_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        port = self.db.write(lambda c: ports.update(c, port_id, attrs, self.dns))
        LOG.info(
            "Updated port %s revision=%d mac=%s ips=%s",
            port_id,
            port["revision_number"],
            port["mac_address"],
            ",".join(f["ip_address"] for f in port["fixed_ips"]),
        )
        self._notify(lambda n: n.port_changed(port))
        return port

    def delete_port(self, port_id: str) -> None:
        port = self.db.write(lambda c: ports.delete(c, port_id, self.dns))
        LOG.info("Deleted port %s", port_id)
        self._notify(lambda n: n.port_deleted(port))

    # availability
    def ip_availabilities(
        self, wanted: dict[str, list[str]] | None = None, versions: set[int] | None = None
    ) -> list[dict[str, Any]]:
        """versions: count only the subnets of these IP versions (all when None)."""
        wanted = dict(wanted or {})
        ids = wanted.pop("network_id", None)
        with self.db.read() as c:
            return filters.apply(availability.list_(c, ids, versions), wanted)

    def ip_availability(self, net_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            networks.get_row(c, net_id)
            return availability.list_(c, [net_id])[0]

    # DHCP agents (the bus server)
    def subscribe_agent(self, host: str, net_ids: list[str]) -> list[str]:
        """Subscribe host's agent to the events of net_ids (added to what it has)."""
        served = self.db.write(lambda c: agents.subscribe(c, host, net_ids, time.time()))
        self._notify(lambda n: n.invalidate())
        return served

    def agent_heartbeat(
        self, host: str, served: list[str], status: dict[str, Any], started_at: float
    ) -> None:
        """Record a heartbeat; the networks it lists become the host's subscription.
        The subscription caches are dropped only when it changed: most heartbeats
        change nothing, and each drop makes the next port events read every agent."""
        changed = self.db.write(
            lambda c: agents.heartbeat(c, host, served, status, started_at, time.time())
        )
        if changed:
            self._notify(lambda n: n.invalidate())

    def host_heartbeat(self, name: str, bridges: list[str], started_at: float) -> None:
        """A host service is alive and carries these oVirt networks (bridges)."""
        self.db.write(lambda c: hosts.heartbeat(c, name, bridges, started_at, time.time()))

    def set_host_dhcp(
        self, name: str, *, desired: list | None = None, confirmed: list | None = None
    ) -> None:
        """Record the DHCP manager's wanted list for a host, or what the host confirmed."""
        values: dict[str, Any] = {}
        if desired is not None:
            values["dhcp_desired"] = desired
        if confirmed is not None:
            values["dhcp_confirmed"] = confirmed
        self.db.write(lambda c: hosts.set_dhcp_lists(c, name, values))

    def list_hosts(self) -> list[dict[str, Any]]:
        with self.db.read() as c:
            return hosts.list_(c)

    def dhcp_port_networks(self, host: str) -> list[str]:
        """The networks on which host has a DHCP port."""
        with self.db.read() as c:
            return agents.dhcp_port_networks(c, host)

    def release_network(
        self, host: str, net_id: str, by_agent: bool = True
    ) -> list[dict[str, Any]]:
        """host no longer serves net_id: unsubscribe it, delete its DHCP port there
        (its address goes to the freed list). ``by_agent``: the host's agent said so
        (it is alive); else the DHCP manager releases it for a host long gone."""
        now = time.time() if by_agent else None
        gone = self.db.write(lambda c: agents.release(c, host, net_id, now, self.dns))
        self._notify(lambda n: n.invalidate())
        for port in gone:
            LOG.info("Deleted DHCP port %s of host %s on network %s", port["id"], host, net_id)

            def tell(n: ChangeListener, port: dict[str, Any] = port) -> None:
                n.port_deleted(port)

            self._notify(tell)
        return gone

    def list_agents(self) -> list[dict[str, Any]]:
        with self.db.read() as c:
            return agents.list_agents(c)

    def metrics_view(self) -> dict[str, Any]:
        """What the metrics endpoint reads, in one transaction (ipam.api.metrics):
        addresses per subnet, ports counted by (network, status), the networks' HA
        counts, the agents, the hosts and the leases counted by (network, state); a
        few queries whatever the store's size."""
        with self.db.read() as c:
            return {
                "subnets": availability.per_subnet(c),
                "ports": ports.count_by_status(c),
                "networks": networks.ha_counts(c),
                "agents": agents.list_agents(c),
                "hosts": hosts.list_(c),
                "leases": leases.counts(c, time.time()),
            }

    def agent_subscriptions(self) -> dict[str, list[str]]:
        """network id -> hosts whose agents are subscribed to it."""
        with self.db.read() as c:
            return agents.subscriptions(c)

    def ensure_dhcp_port(self, net_id: str, host: str) -> dict[str, Any] | None:
        """host's DHCP port on net_id, with an IP on each DHCP-enabled subnet; None
        when the network has none. Created or brought up to date when needed."""
        port, changed = self.db.write(
            lambda c: agents.ensure_dhcp_port(c, net_id, host, self.mac_prefix, self.dns)
        )
        if changed and port is not None:
            LOG.info(
                "DHCP port %s of host %s on network %s revision=%d ips=%s",
                port["id"],
                host,
                net_id,
                port["revision_number"],
                ",".join(f["ip_address"] for f in port["fixed_ips"]),
            )
            self._notify(lambda n: n.port_changed(port))
        return port

    def network_state(self, net_id: str) -> dict[str, Any]:
        """{network, subnets, ports} of net_id, read in one transaction."""
        with self.db.read() as c:
            return agents.network_state(c, net_id, self.dns)

    def record_acks(self, host: str, net_id: str, acked: dict[str, int]) -> tuple[int, list[str]]:
        """Record host's readiness acknowledgements {port id: revision} on net_id; ports
        acknowledged at their current revision become ACTIVE (revision unchanged).
        Returns (acknowledgements recorded, ids of ports that became ACTIVE)."""
        return self.db.write(lambda c: agents.record_acks(c, host, net_id, acked, time.time()))

    def set_port_status(self, port_id: str, revision: int, status: str) -> bool:
        """Set a port's status if it is still at revision, without bumping revision_number."""
        return self.db.write(lambda c: agents.set_port_status(c, port_id, revision, status))

    def port_acks(self, port_id: str) -> list[dict[str, Any]]:
        with self.db.read() as c:
            return agents.acks_of(c, port_id)

    def record_leases(
        self, host: str, net_id: str, facts: list[dict[str, Any]], rebuilt: bool
    ) -> int:
        """Store a batch of lease facts of host's dnsmasq on net_id (ipam.store.leases)."""
        now = time.time()
        return self.db.write(lambda c: leases.record(c, host, net_id, facts, rebuilt, now))

    def list_leases(
        self, net_id: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        """Every lease (of a network, in a state), with the port whose MAC it is."""
        with self.db.read() as c:
            return leases.list_(c, net_id, state, time.time())
