"""What the administrator's web page shows (ipam.api.dashboard), read from the store:
pages of networks, hosts and ports, filtered and paged in the database.

Every answer is one page with a bounded limit, and every query is bounded by that
page or by the cluster's size (hosts, agents), never by the number of ports: the
page costs about the same at 1,000 networks and 100,000 ports as at ten.

Liveness is the rule of the metrics (ipam.api.metrics): a host service or DHCP agent
is alive when its last heartbeat is within host_down_time; a network's serving hosts
are the agents subscribed to it (what the DHCP manager placed, as the bus server
records it).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ipam.db.schema import allocation_pools, dhcp_agents, hosts, ip_allocations, networks
from ipam.db.schema import ports as ports_table
from ipam.db.schema import subnets as subnets_table
from ipam.store import allocation
from ipam.store.hosts import is_alive

if TYPE_CHECKING:
    from ipam.store.facade import Store

SUBNETS_SHOWN = 16  # per network; more are counted, not listed
SERVED_SHOWN = 32  # networks listed per host; more are counted
#: What the page shows of a port; the lease keys come with the port view
#: (Store.list_ports) when the store has them.
PORT_KEYS = (
    "id",
    "name",
    "network_id",
    "mac_address",
    "device_id",
    "device_owner",
    "status",
    "binding:host_id",
    "created_at",
    "dhcp_lease",
    "dhcp_status_reason",
)
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", re.IGNORECASE)


def _contains(columns: Iterable[Any], text: str) -> sa.ColumnElement[bool]:
    """Any of columns contains text, ignoring case (LIKE with the text escaped)."""
    return sa.or_(*(c.icontains(text, autoescape=True) for c in columns))


def _agents(conn: Connection) -> list[Row]:
    """Every DHCP agent: as many as hosts, read whole (a cluster's size, not the
    store's)."""
    query = sa.select(
        dhcp_agents.c.host, dhcp_agents.c.networks, dhcp_agents.c.status, dhcp_agents.c.last_seen
    ).order_by(dhcp_agents.c.host)
    return list(conn.execute(query))


def _dnsmasq_states(status: dict[str, Any] | None) -> dict[str, str | None]:
    """network id -> its dnsmasq's state as the agent's last heartbeat said."""
    nets = (status or {}).get("networks") or []
    return {n["id"]: n.get("dnsmasq") for n in nets if isinstance(n, dict) and "id" in n}


def _subnet_usage(conn: Connection, net_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """network id -> its subnets with addresses total, used and free (pool sizes summed
    in Python: an IPv6 pool holds more than a database integer)."""
    subs = conn.execute(
        sa.select(
            subnets_table.c.id,
            subnets_table.c.network_id,
            subnets_table.c.name,
            subnets_table.c.cidr,
            subnets_table.c.ip_version,
        )
        .where(subnets_table.c.network_id.in_(net_ids))
        .order_by(subnets_table.c.created_at, subnets_table.c.id)
    ).all()
    sub_ids = [s.id for s in subs]
    used: dict[str, int] = dict(
        conn.execute(
            sa.select(ip_allocations.c.subnet_id, sa.func.count())
            .where(ip_allocations.c.subnet_id.in_(sub_ids))
            .group_by(ip_allocations.c.subnet_id)
        ).all()
    )
    total: dict[str, int] = {}
    for pool in conn.execute(
        sa.select(
            allocation_pools.c.subnet_id, allocation_pools.c.first_ip, allocation_pools.c.last_ip
        ).where(allocation_pools.c.subnet_id.in_(sub_ids))
    ):
        total[pool.subnet_id] = total.get(pool.subnet_id, 0) + pool.last_ip - pool.first_ip + 1
    out: dict[str, list[dict[str, Any]]] = {}
    for s in subs:
        t, u = total.get(s.id, 0), used.get(s.id, 0)
        out.setdefault(s.network_id, []).append(
            {
                "id": s.id,
                "name": s.name,
                "cidr": s.cidr,
                "ip_version": s.ip_version,
                "total": t,
                "used": u,
                "free": max(t - u, 0),
            }
        )
    return out


def _address_match(conn: Connection, text: str) -> sa.ColumnElement[bool] | None:
    """Ports holding exactly the address text (None when text is not an address).
    Stored integers depend on the subnet for IPv6 (ipam.store.allocation.encode)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 4:
        held = sa.select(ip_allocations.c.port_id).where(
            ip_allocations.c.ip == int(ip),
            ip_allocations.c.subnet_id.in_(
                sa.select(subnets_table.c.id).where(subnets_table.c.ip_version == 4)
            ),
        )
    else:
        by_value: dict[int, list[str]] = {}
        for s in conn.execute(
            sa.select(subnets_table.c.id, subnets_table.c.cidr).where(
                subnets_table.c.ip_version == 6
            )
        ):
            if ip in allocation.network(s.cidr):
                by_value.setdefault(allocation.encode(s.cidr, ip), []).append(s.id)
        if not by_value:
            return sa.false()
        held = sa.select(ip_allocations.c.port_id).where(
            sa.or_(
                *(
                    (ip_allocations.c.ip == v) & ip_allocations.c.subnet_id.in_(ids)
                    for v, ids in by_value.items()
                )
            )
        )
    return ports_table.c.id.in_(held)


def _port_match(conn: Connection, text: str) -> sa.ColumnElement[bool]:
    """The ports a search means. A whole MAC, UUID (port or device id) or address is
    looked up exactly, by index: what an administrator pastes costs milliseconds at
    100,000 ports. Anything else is contained (ignoring case) in MAC, name, id or
    device id: a scan, bounded by the page's limit in what it returns."""
    if _MAC.match(text):
        return ports_table.c.mac_address == text.lower().replace("-", ":")
    if _UUID.match(text):
        return sa.or_(ports_table.c.id == text.lower(), ports_table.c.device_id == text)
    address = _address_match(conn, text)
    if address is not None:
        return address
    columns = [ports_table.c.mac_address, ports_table.c.name, ports_table.c.id]
    return _contains([*columns, ports_table.c.device_id], text)


class Dashboard:
    """The page's reads of one store; host_down_time: [dhcp] host_down_time."""

    def __init__(self, store: Store, host_down_time: float) -> None:
        self.store, self.down = store, host_down_time

    def summary(self) -> dict[str, Any]:
        """Counts for the page's header (a few grouped queries)."""
        now = time.time()
        count = sa.func.count()
        with self.store.db.read() as c:
            nets = c.execute(sa.select(count).select_from(networks)).scalar_one()
            subs = c.execute(sa.select(count).select_from(subnets_table)).scalar_one()
            by_status: dict[str, int] = dict(
                c.execute(
                    sa.select(ports_table.c.status, count).group_by(ports_table.c.status)
                ).all()
            )
            seen: dict[str, float] = dict(
                c.execute(sa.select(hosts.c.name, hosts.c.last_seen)).all()
            )
            for agent in c.execute(sa.select(dhcp_agents.c.host, dhcp_agents.c.last_seen)):
                seen.setdefault(agent.host, agent.last_seen)
        return {
            "now": now,
            "host_down_time": self.down,
            "networks": nets,
            "subnets": subs,
            "ports": {"total": sum(by_status.values()), "by_status": by_status},
            "hosts": {
                "total": len(seen),
                "alive": sum(is_alive(t, self.down, now) for t in seen.values()),
            },
        }

    def networks(self, limit: int, offset: int, q: str) -> dict[str, Any]:
        """A page of networks (by name) whose name, id or VDSM name contains q: HA
        count, serving hosts and whether each is alive, ports, usage per subnet."""
        now = time.time()
        cols = [networks.c.name, networks.c.id, networks.c.vdsm_name]
        where = [_contains(cols, q)] if q else []
        with self.store.db.read() as c:
            total = c.execute(
                sa.select(sa.func.count()).select_from(networks).where(*where)
            ).scalar_one()
            rows = c.execute(
                sa.select(
                    networks.c.id,
                    networks.c.name,
                    networks.c.vdsm_name,
                    networks.c.ha_count,
                    networks.c.admin_state_up,
                )
                .where(*where)
                .order_by(networks.c.name, networks.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            ids = [r.id for r in rows]
            usage = _subnet_usage(c, ids)
            port_counts: dict[str, int] = dict(
                c.execute(
                    sa.select(ports_table.c.network_id, sa.func.count())
                    .where(ports_table.c.network_id.in_(ids))
                    .group_by(ports_table.c.network_id)
                ).all()
            )
            agents = _agents(c)
        serving: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for agent in agents:
            states = _dnsmasq_states(agent.status)
            alive = is_alive(agent.last_seen, self.down, now)
            for net_id in agent.networks or []:
                if net_id in serving:
                    serving[net_id].append(
                        {"host": agent.host, "alive": alive, "dnsmasq": states.get(net_id)}
                    )
        items = []
        for r in rows:
            subs = usage.get(r.id, [])
            items.append(
                {
                    "id": r.id,
                    "name": r.name,
                    "vdsm_name": r.vdsm_name,
                    "ha_count": r.ha_count,
                    "admin_state_up": r.admin_state_up,
                    "ports": port_counts.get(r.id, 0),
                    "serving": serving[r.id],
                    "serving_alive": sum(s["alive"] for s in serving[r.id]),
                    "subnets": subs[:SUBNETS_SHOWN],
                    "subnet_count": len(subs),
                }
            )
        return {"now": now, "total": total, "limit": limit, "offset": offset, "networks": items}

    def hosts(self, limit: int, offset: int, q: str) -> dict[str, Any]:
        """A page of hosts (by name) whose name contains q: when their host service
        and DHCP agent last spoke, whether they are alive, the networks their agent
        serves. Hosts and agents are read whole: a cluster's size."""
        now = time.time()
        with self.store.db.read() as c:
            services = {
                r.name: r
                for r in c.execute(sa.select(hosts.c.name, hosts.c.bridges, hosts.c.last_seen))
            }
            agents = {a.host: a for a in _agents(c)}
            needle = q.lower()
            names = sorted(n for n in services.keys() | agents.keys() if needle in n.lower())
            shown = names[offset : offset + limit]
            served = {n: list(agents[n].networks or []) if n in agents else [] for n in shown}
            wanted = {i for nets in served.values() for i in nets[:SERVED_SHOWN]}
            net_names: dict[str, str] = dict(
                c.execute(
                    sa.select(networks.c.id, networks.c.name).where(networks.c.id.in_(wanted))
                ).all()
            )
        items = []
        for name in shown:
            service, agent = services.get(name), agents.get(name)
            service_alive = is_alive(service.last_seen, self.down, now) if service else None
            agent_alive = is_alive(agent.last_seen, self.down, now) if agent else None
            states = _dnsmasq_states(agent.status) if agent else {}
            nets = served[name]
            items.append(
                {
                    "name": name,
                    # The host service is the host's heartbeat; a host without one (an
                    # agent run by hand) is as alive as its agent. A stopped agent
                    # (nothing to serve) does not make a live host down.
                    "alive": service_alive if service is not None else agent_alive,
                    "last_seen": max(r.last_seen for r in (service, agent) if r is not None),
                    "service_alive": service_alive,
                    "service_last_seen": service.last_seen if service else None,
                    "agent_alive": agent_alive,
                    "agent_last_seen": agent.last_seen if agent else None,
                    "bridges": len(service.bridges or []) if service else 0,
                    "serving": [
                        {"id": i, "name": net_names.get(i), "dnsmasq": states.get(i)}
                        for i in nets[:SERVED_SHOWN]
                    ],
                    "serving_count": len(nets),
                }
            )
        return {"now": now, "total": len(names), "limit": limit, "offset": offset, "hosts": items}

    def ports(
        self,
        limit: int,
        offset: int,
        q: str,
        network_id: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """A page of ports, newest first, that the search q means (_port_match): status,
        addresses, and the lease and its trouble when the port view has them."""
        conds: list[sa.ColumnElement[bool]] = []
        with self.store.db.read() as c:
            if q.strip():
                conds.append(_port_match(c, q.strip()))
            if network_id:
                conds.append(ports_table.c.network_id == network_id)
            if status:
                conds.append(ports_table.c.status == status)
            total = c.execute(
                sa.select(sa.func.count()).select_from(ports_table).where(*conds)
            ).scalar_one()
            ids = list(
                c.execute(
                    sa.select(ports_table.c.id)
                    .where(*conds)
                    .order_by(ports_table.c.created_at.desc(), ports_table.c.id.desc())
                    .limit(limit)
                    .offset(offset)
                ).scalars()
            )
        # The port view as the API shows it, leases included (read once more: a port
        # deleted meanwhile is simply not on this page).
        views = {p["id"]: p for p in self.store.list_ports({"id": ids})} if ids else {}
        net_ids = {p["network_id"] for p in views.values()}
        with self.store.db.read() as c:
            net_names: dict[str, str] = dict(
                c.execute(
                    sa.select(networks.c.id, networks.c.name).where(networks.c.id.in_(net_ids))
                ).all()
            )
        items = []
        for i in ids:
            port = views.get(i)
            if port is None:
                continue
            item = {k: port[k] for k in PORT_KEYS if k in port}
            item["ip_addresses"] = [f["ip_address"] for f in port.get("fixed_ips", [])]
            item["network_name"] = net_names.get(port["network_id"])
            items.append(item)
        return {"total": total, "limit": limit, "offset": offset, "ports": items}
