"""The simulated data center of bench.scale: which host carries which bridge, and the
store seeded with its networks, subnets and ports in bulk (no REST calls: 100,000
creates would take longer than the whole measurement).

Networks are created through the store (so they are exactly what the API makes);
ports go in as bulk INSERTs of oVirt-like ports with one address each, the subnet's
fresh_cursor moved past them (as bench.ipam_throughput.seed_ports does).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ipam.db.engine import Database
from ipam.db.schema import ip_allocations, ports, subnets
from ipam.store import Store, allocation

#: Bridges a host carries: VDSM's bridged networks of a realistic hypervisor.
BRIDGES_MIN, BRIDGES_MAX = 20, 200


@dataclass
class DataCenter:
    """Hosts and networks as generated (seeded RNG: the same flags give the same one)."""

    hosts: list[str]
    bridges: dict[str, list[str]]  # host -> bridge (= network VDSM) names it carries
    networks: list[str]  # bridge names, index = network number
    ha_count: int
    ports_per_network: list[int]

    def carriers(self) -> dict[str, set[str]]:
        """bridge -> hosts carrying it."""
        out: dict[str, set[str]] = {b: set() for b in self.networks}
        for host, names in self.bridges.items():
            for name in names:
                out[name].add(host)
        return out


def bridge_name(i: int) -> str:
    return f"net{i:05d}"


def host_name(i: int) -> str:
    return f"sim-host-{i:04d}"


def generate(hosts: int, networks: int, ports: int, ha_count: int, seed: int) -> DataCenter:
    """Each host carries a random 20-200 of the networks (fewer when there are fewer);
    every network is carried by at least ha_count + 1 hosts (where there are that many),
    so that one lost server can always move."""
    rng = random.Random(seed)
    names = [bridge_name(i) for i in range(networks)]
    host_names = [host_name(i) for i in range(hosts)]
    lo, hi = min(BRIDGES_MIN, networks), min(BRIDGES_MAX, networks)
    carried = {h: set(rng.sample(range(networks), rng.randint(lo, hi))) for h in host_names}
    need = min(hosts, ha_count + 1)
    count = [0] * networks
    for got in carried.values():
        for n in got:
            count[n] += 1
    for n in range(networks):
        while count[n] < need:
            h = rng.choice([h for h in host_names if n not in carried[h]])
            carried[h].add(n)
            count[n] += 1
    per = [ports // networks + (1 if i < ports % networks else 0) for i in range(networks)]
    return DataCenter(
        host_names,
        {h: sorted(names[n] for n in got) for h, got in carried.items()},
        names,
        ha_count,
        per,
    )


def _cidr(i: int, wanted: int) -> str:
    """A subnet for network i with room for ``wanted`` addresses (VM ports and the DHCP
    ports of the hosts that may serve it): a /24 where that fits, else a /16 (networks
    may share a CIDR, as in Neutron)."""
    if wanted <= 250:
        return f"10.{i // 256 % 256}.{i % 256}.0/24"
    return f"10.{i % 256}.0.0/16"


def seed(db: Database, dc: DataCenter, progress: object = print) -> dict[str, str]:
    """Networks (HA count dc.ha_count, VDSM name = bridge), one DHCP-enabled subnet
    each, and their ports; returns bridge name -> network id."""
    store = Store(db)
    carriers = dc.carriers()
    ids: dict[str, str] = {}
    subnet_of: dict[str, str] = {}
    began = time.monotonic()
    for i, name in enumerate(dc.networks):
        net = store.create_network({"name": name, "vdsm_name": name, "ha_count": dc.ha_count})
        room = dc.ports_per_network[i] + len(carriers[name]) + 4
        sub = store.create_subnet({"network_id": net["id"], "cidr": _cidr(i, room)})
        ids[name], subnet_of[net["id"]] = net["id"], sub["id"]
        if (i + 1) % 1000 == 0 and callable(progress):
            progress(f"  {i + 1} networks in {time.monotonic() - began:.0f}s")
    _bulk_ports(db, dc, ids, subnet_of)
    return ids


def _bulk_ports(
    db: Database, dc: DataCenter, ids: dict[str, str], subnet_of: dict[str, str]
) -> None:
    base = datetime.now(UTC) - timedelta(days=1)
    stamp = base.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    port_rows: list[dict[str, object]] = []
    ip_rows: list[dict[str, object]] = []
    cursors: list[dict[str, object]] = []

    def flush(conn: sa.Connection) -> None:
        if port_rows:
            conn.execute(sa.insert(ports), port_rows)
            conn.execute(sa.insert(ip_allocations), ip_rows)
        port_rows.clear()
        ip_rows.clear()

    serial = 0
    with db.engine.begin() as conn:
        for i, name in enumerate(dc.networks):
            net_id = ids[name]
            sub_id = subnet_of[net_id]
            pools = allocation.load_pools(conn, sub_id)
            first = conn.execute(
                sa.select(subnets.c.fresh_cursor).where(subnets.c.id == sub_id)
            ).scalar_one()
            count = dc.ports_per_network[i]
            for n in range(first, first + count):
                port_id = str(uuid.uuid4())
                serial += 1
                # 02:... is locally administered and never what the store generates.
                mac = "02:00:" + ":".join(f"{serial >> s & 0xFF:02x}" for s in (24, 16, 8, 0))
                port_rows.append(
                    {
                        "id": port_id,
                        "network_id": net_id,
                        "name": "nic1",
                        "mac_address": mac,
                        "device_id": str(uuid.uuid4()),
                        "device_owner": "oVirt",
                        "host_id": dc.hosts[serial % len(dc.hosts)],
                        "status": "ACTIVE",
                        "admin_state_up": True,
                        "project_id": "oVirt",
                        "description": "",
                        "extra": {"security_groups": []},
                        "created_at": stamp,
                        "updated_at": stamp,
                        "revision_number": 2,
                    }
                )
                ip_rows.append(
                    {
                        "subnet_id": sub_id,
                        "ip": allocation.offset_to_ip(pools, n),
                        "port_id": port_id,
                    }
                )
            cursors.append({"sid": sub_id, "cursor": first + count})
            if len(port_rows) >= 5000:
                flush(conn)
        flush(conn)
        if cursors:
            conn.execute(
                sa.update(subnets)
                .where(subnets.c.id == sa.bindparam("sid"))
                .values(fresh_cursor=sa.bindparam("cursor")),
                cursors,
            )
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
