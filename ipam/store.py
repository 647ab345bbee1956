"""The IPAM store: every read and change of networks, subnets and ports.

One entry point for the REST API, the CLI and (later) the DHCP manager; each
call is one transaction, retried whole when it loses a race (ipam.db.engine).
"""

from __future__ import annotations

import logging
from typing import Any

from ipam import availability, filters, networks, ports, subnets, validators
from ipam.db.engine import Database

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


class Store:
    def __init__(self, db: Database, base_mac: str = "fa:16:3e:00:00:00") -> None:
        self.db = db
        self.mac_prefix = validators.base_mac_prefix(base_mac)

    # networks
    def create_network(self, attrs: dict[str, Any]) -> dict[str, Any]:
        net = self.db.write(lambda c: networks.create(c, attrs))
        LOG.info(
            "Created network %s vdsm_name=%s ha_count=%d",
            net["id"],
            net["vdsm_name"],
            net["ha_count"],
        )
        return net

    def get_network(self, net_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            return networks.show(c, net_id)

    def list_networks(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        sql, rest = _split("network", wanted or {})
        with self.db.read() as c:
            return filters.apply(networks.list_(c, sql), rest)

    def update_network(self, net_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        net = self.db.write(lambda c: networks.update(c, net_id, attrs))
        LOG.info("Updated network %s revision=%d", net_id, net["revision_number"])
        return net

    def delete_network(self, net_id: str) -> None:
        self.db.write(lambda c: networks.delete(c, net_id))
        LOG.info("Deleted network %s", net_id)

    # subnets
    def create_subnet(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sub = self.db.write(lambda c: subnets.create(c, attrs))
        LOG.info("Created subnet %s cidr=%s network=%s", sub["id"], sub["cidr"], sub["network_id"])
        return sub

    def get_subnet(self, subnet_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            return subnets.show(c, subnet_id)

    def list_subnets(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        sql, rest = _split("subnet", wanted or {})
        with self.db.read() as c:
            return filters.apply(subnets.list_(c, sql), rest)

    def update_subnet(self, subnet_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        sub = self.db.write(lambda c: subnets.update(c, subnet_id, attrs))
        LOG.info("Updated subnet %s revision=%d", subnet_id, sub["revision_number"])
        return sub

    def delete_subnet(self, subnet_id: str) -> None:
        self.db.write(lambda c: subnets.delete(c, subnet_id))
        LOG.info("Deleted subnet %s", subnet_id)

    # ports
    def create_port(self, attrs: dict[str, Any]) -> dict[str, Any]:
        port = self.db.write(lambda c: ports.create(c, attrs, self.mac_prefix))
        LOG.info(
            "Created port %s network=%s mac=%s ips=%s",
            port["id"],
            port["network_id"],
            port["mac_address"],
            ",".join(f["ip_address"] for f in port["fixed_ips"]),
        )
        return port

    def get_port(self, port_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            return ports.show(c, port_id)

    def list_ports(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        sql, rest = _split("port", wanted or {})
        with self.db.read() as c:
            return filters.apply(ports.list_(c, sql), rest)

    def update_port(self, port_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
        port = self.db.write(lambda c: ports.update(c, port_id, attrs))
        LOG.info(
            "Updated port %s revision=%d mac=%s ips=%s",
            port_id,
            port["revision_number"],
            port["mac_address"],
            ",".join(f["ip_address"] for f in port["fixed_ips"]),
        )
        return port

    def delete_port(self, port_id: str) -> None:
        self.db.write(lambda c: ports.delete(c, port_id))
        LOG.info("Deleted port %s", port_id)

    # availability
    def ip_availabilities(self, wanted: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        wanted = dict(wanted or {})
        ids = wanted.pop("network_id", None)
        with self.db.read() as c:
            return filters.apply(availability.list_(c, ids), wanted)

    def ip_availability(self, net_id: str) -> dict[str, Any]:
        with self.db.read() as c:
            networks.get_row(c, net_id)
            return availability.list_(c, [net_id])[0]
