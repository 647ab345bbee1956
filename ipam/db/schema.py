"""Tables of the IPAM store (SQLAlchemy Core). Alembic migrations create them.

Uniqueness that the invariants depend on is enforced here, by the database:
an IP once per subnet (``ip_allocations`` primary key), a MAC once per network,
a VDSM name once, a port's dns_name once per network. IPs are stored as integers
so ranges compare cheaply.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

ID = sa.String(36)


def _common() -> list[sa.Column]:
    return [
        sa.Column("project_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("description", sa.String(1024), nullable=False, server_default=""),
        # Neutron attributes we keep but do not act on (tags, provider:*, ...).
        sa.Column("extra", sa.JSON, nullable=False, default=dict),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False, server_default="1"),
    ]


networks = sa.Table(
    "networks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    # Up to 256 characters, as oVirt names networks.
    sa.Column("name", sa.String(256), nullable=False, server_default=""),
    # NULL: no bridge (no DHCP server); unique among the networks that have one.
    sa.Column("vdsm_name", sa.String(15), nullable=True, unique=True),
    sa.Column("mtu", sa.Integer, nullable=False),
    sa.Column("admin_state_up", sa.Boolean, nullable=False),
    sa.Column("ha_count", sa.Integer, nullable=False),
    # Seconds; NULL: the DHCP agent's default; -1: infinite (checked by ipam.store.validators).
    sa.Column("dhcp_lease_time", sa.Integer, nullable=True),
    *_common(),
    sa.CheckConstraint("ha_count >= 0", name="ha_count_nonneg"),
)

subnets = sa.Table(
    "subnets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "network_id",
        ID,
        sa.ForeignKey("networks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("ip_version", sa.Integer, nullable=False, server_default="4"),
    sa.Column("cidr", sa.String(43), nullable=False),
    sa.Column("gateway_ip", sa.String(39), nullable=True),
    # IPv6 only (Neutron's attributes): slaac, dhcpv6-stateful, dhcpv6-stateless or NULL.
    sa.Column("ipv6_address_mode", sa.String(16), nullable=True),
    sa.Column("ipv6_ra_mode", sa.String(16), nullable=True),
    sa.Column("enable_dhcp", sa.Boolean, nullable=False),
    sa.Column("dns_nameservers", sa.JSON, nullable=False),
    sa.Column("host_routes", sa.JSON, nullable=False),
    # Allocation cursor: offset of the next never-used address in the pools
    # (see ipam.store.allocation). pool_size is the number of addresses in the pools,
    # at most 2**63 - 1 (a /64's pools hold more; the cursor never gets that far).
    sa.Column("fresh_cursor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pool_size", sa.BigInteger, nullable=False),
    *_common(),
)

allocation_pools = sa.Table(
    "allocation_pools",
    metadata,
    sa.Column("subnet_id", ID, sa.ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("first_ip", sa.BigInteger, primary_key=True),
    sa.Column("last_ip", sa.BigInteger, nullable=False),
)

ports = sa.Table(
    "ports",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("network_id", ID, sa.ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("mac_address", sa.String(17), nullable=False),
    sa.Column("device_id", sa.String(255), nullable=False, server_default="", index=True),
    sa.Column("device_owner", sa.String(255), nullable=False, server_default=""),
    sa.Column("host_id", sa.String(255), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("admin_state_up", sa.Boolean, nullable=False),
    # The served hostname (an RFC 1123 label, ipam.bus.dhcp_options); NULL: none.
    sa.Column("dns_name", sa.String(63), nullable=True),
    *_common(),
    sa.UniqueConstraint("network_id", "mac_address"),
)
sa.Index("ix_ports_mac_address", ports.c.mac_address)
# A unique index, not a constraint: SQLite adds it without copying the table (whose
# triggers, migration 0004, would go with the copy). NULLs are distinct in both.
sa.Index("ix_ports_network_id_dns_name", ports.c.network_id, ports.c.dns_name, unique=True)

ip_allocations = sa.Table(
    "ip_allocations",
    metadata,
    sa.Column("subnet_id", ID, sa.ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("ip", sa.BigInteger, primary_key=True),
    sa.Column(
        "port_id",
        ID,
        sa.ForeignKey("ports.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
)

# Addresses released by deleted or changed ports, reused only when the subnet has no
# never-used address left, oldest first: a DHCP server may still hold the old record.
freed_ips = sa.Table(
    "freed_ips",
    metadata,
    sa.Column("subnet_id", ID, sa.ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("ip", sa.BigInteger, primary_key=True),
    sa.Column("freed_at", sa.Float, nullable=False),
    sa.Index("ix_freed_ips_subnet_id_freed_at", "subnet_id", "freed_at"),
)

# DHCP agents as the bus knows them: the networks each serves (its subscription to
# the engine's events), its last heartbeat, when it started and was last heard of.
dhcp_agents = sa.Table(
    "dhcp_agents",
    metadata,
    sa.Column("host", sa.String(64), primary_key=True),
    sa.Column("networks", sa.JSON, nullable=False),
    sa.Column("status", sa.JSON, nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("last_seen", sa.Float, nullable=False),
)

# Hosts as their host services report them: the oVirt networks (bridges) they carry.
hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("bridges", sa.JSON, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    # What the DHCP manager wants the host to serve, and what Host.setDHCP confirmed.
    sa.Column("dhcp_desired", sa.JSON, nullable=True),
    sa.Column("dhcp_confirmed", sa.JSON, nullable=True),
)

# Readiness acknowledgements: host's dnsmasq has loaded revision_number of the port.
port_acks = sa.Table(
    "port_acks",
    metadata,
    sa.Column("port_id", ID, sa.ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("host", sa.String(64), primary_key=True),
    sa.Column("revision_number", sa.Integer, nullable=False),
    sa.Column("acked_at", sa.Float, nullable=False),
)

# What each host's dnsmasq last saw of each client (agents' lease.facts). Joined to a
# port by (network, MAC) when shown: a fact is never attached to the port of its IP.
dhcp_leases = sa.Table(
    "dhcp_leases",
    metadata,
    sa.Column("network_id", ID, sa.ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("mac_address", sa.String(17), primary_key=True),
    sa.Column("host", sa.String(64), primary_key=True),
    sa.Column("ip_address", sa.String(39), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("reason", sa.String(255), nullable=True),
    # What the client said of itself (migration 0010): kept as data, never as a name.
    sa.Column("client_id", sa.String(765), nullable=True),
    sa.Column("client_hostname", sa.String(253), nullable=True),
)
sa.Index("ix_dhcp_leases_state", dhcp_leases.c.state)

# Change counters kept by triggers (migration 0004): 'ports' advances with every
# committed change of a port or of its addresses; changes up to ``pruned`` may be
# gone from port_changes, which holds, per port, the counter value of its last change.
change_counters = sa.Table(
    "change_counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("pruned", sa.BigInteger, nullable=False),
)

# No foreign key: a deleted port's row says that it changed (it is gone).
port_changes = sa.Table(
    "port_changes",
    metadata,
    sa.Column("port_id", ID, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False, index=True),
)
