"""IP and MAC allocation without scanning the subnet.

Each subnet has a cursor over its allocation pools. Never-used addresses are
handed out in order by advancing the cursor (one UPDATE ... RETURNING, which
also serialises allocators of one subnet on PostgreSQL); an address taken
explicitly ahead of the cursor is skipped when the cursor reaches it. Only when
the pools have no never-used address left are freed addresses reused, least
recently freed first, because a DHCP server may still hold a freed address's old
record (DESIGN.md, dnsmasq facts). The ``ip_allocations`` primary key is what
finally guarantees that no address is allocated twice.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import random
import time
from collections.abc import Sequence, Set

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ipam.db.schema import allocation_pools, freed_ips, ip_allocations, ports, subnets
from ipam.exceptions import (
    InvalidInput,
    IpAddressAlreadyAllocated,
    MacAddressInUse,
)

Pool = tuple[int, int]  # first and last address, inclusive, as stored (see encode)
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# How an address is stored (a signed 64-bit column): an IPv4 address as its integer;
# an IPv6 address as its offset in its subnet (a subnet is /64 or longer), shifted
# down by 2**63 so that every offset of a /64 fits and the order is kept. The
# allocator's arithmetic (cursor + 1, pool ranges) is the same for both families.
V6_SHIFT = 1 << 63
MAX_POOL_SIZE = (1 << 63) - 1  # a /64's pools count 2**64 - 2: the cursor stops here


AUTO_ADDRESS_MODES = ("dhcpv6-stateless", "slaac")  # IPv6 modes whose ports get EUI-64


def is_auto_address(subnet: object) -> bool:
    """A subnet whose ports take the EUI-64 address of their MAC, not one of its pools
    (Neutron's is_auto_address_subnet: either IPv6 mode slaac or dhcpv6-stateless)."""
    modes = (getattr(subnet, "ipv6_address_mode", None), getattr(subnet, "ipv6_ra_mode", None))
    return any(m in AUTO_ADDRESS_MODES for m in modes)


@functools.lru_cache(maxsize=4096)
def network(cidr: str) -> Net:
    """The subnet of a stored cidr (parsed once: lists decode thousands of rows)."""
    return ipaddress.ip_network(cidr)


def encode(cidr: str, ip: Address | str) -> int:
    """The stored integer of an address of the subnet cidr."""
    net = network(cidr)
    value = int(ipaddress.ip_address(ip) if isinstance(ip, str) else ip)
    if net.version == 4:
        return value
    return value - int(net.network_address) - V6_SHIFT


def decode(cidr: str, value: int) -> Address:
    net = network(cidr)
    if net.version == 4:
        return ipaddress.IPv4Address(value)
    return ipaddress.IPv6Address(int(net.network_address) + value + V6_SHIFT)


def ip_str(cidr: str, value: int) -> str:
    return str(decode(cidr, value))


def eui64(cidr: str, mac: str) -> ipaddress.IPv6Address:
    """The SLAAC address of a MAC in a /64 (RFC 4291 appendix A: the universal/local
    bit flipped, ff:fe in the middle), as Neutron gives ports on slaac and
    dhcpv6-stateless subnets."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    iid = int.from_bytes(bytes([*octets[:3], 0xFF, 0xFE, *octets[3:]]), "big")
    return ipaddress.IPv6Address(int(network(cidr).network_address) | iid)


# Hot-path statements are built once; executing them only binds parameters.
_pools_of = (
    sa.select(allocation_pools.c.first_ip, allocation_pools.c.last_ip)
    .where(allocation_pools.c.subnet_id == sa.bindparam("sid"))
    .order_by(allocation_pools.c.first_ip)
)
_insert_allocation = sa.insert(ip_allocations)
_mac_owner = sa.select(ports.c.id).where(
    ports.c.network_id == sa.bindparam("nid"), ports.c.mac_address == sa.bindparam("mac")
)


def load_pools(conn: Connection, subnet_id: str) -> list[Pool]:
    return [(r.first_ip, r.last_ip) for r in conn.execute(_pools_of, {"sid": subnet_id})]


def offset_to_ip(pools: Sequence[Pool], offset: int) -> int:
    for first, last in pools:
        size = last - first + 1
        if offset < size:
            return first + offset
        offset -= size
    raise IndexError(offset)


_advance = (
    sa.update(subnets)
    .where(subnets.c.id == sa.bindparam("sid"), subnets.c.fresh_cursor < subnets.c.pool_size)
    .values(fresh_cursor=subnets.c.fresh_cursor + 1)
    .returning(subnets.c.fresh_cursor, subnets.c.revision_number)
)

# Pools change only with the subnet's revision, so they are cached per revision.
_pool_cache: dict[str, tuple[int, list[Pool]]] = {}


def _pools_at(conn: Connection, subnet_id: str, revision: int) -> list[Pool]:
    cached = _pool_cache.get(subnet_id)
    if cached is not None and cached[0] == revision:
        return cached[1]
    if len(_pool_cache) > 10000:
        _pool_cache.clear()
    pools = load_pools(conn, subnet_id)
    _pool_cache[subnet_id] = (revision, pools)
    return pools


_is_taken = sa.union_all(
    sa.select(sa.literal(1)).where(
        ip_allocations.c.subnet_id == sa.bindparam("sid"), ip_allocations.c.ip == sa.bindparam("ip")
    ),
    sa.select(sa.literal(1)).where(
        freed_ips.c.subnet_id == sa.bindparam("sid"), freed_ips.c.ip == sa.bindparam("ip")
    ),
)


def _oldest_freed(dialect: str) -> sa.Select:
    query = (
        sa.select(freed_ips.c.ip)
        .where(freed_ips.c.subnet_id == sa.bindparam("sid"))
        .order_by(freed_ips.c.freed_at, freed_ips.c.ip)
        .limit(1)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


def allocate_any(conn: Connection, subnet_id: str, port_id: str) -> int | None:
    """Allocate one address of the subnet to the port, or None when it is full."""
    while True:
        advanced = conn.execute(_advance, {"sid": subnet_id}).first()
        if advanced is None:
            break
        pools = _pools_at(conn, subnet_id, advanced.revision_number)
        ip = offset_to_ip(pools, advanced.fresh_cursor - 1)
        if conn.execute(_is_taken, {"sid": subnet_id, "ip": ip}).first() is None:
            _insert(conn, subnet_id, ip, port_id)
            return ip
    freed: int | None = conn.execute(_oldest_freed(conn.dialect.name), {"sid": subnet_id}).scalar()
    if freed is None:
        return None
    conn.execute(
        sa.delete(freed_ips).where(freed_ips.c.subnet_id == subnet_id, freed_ips.c.ip == freed)
    )
    _insert(conn, subnet_id, freed, port_id)
    return freed


def allocate_specific(conn: Connection, subnet_id: str, ip: int, port_id: str, cidr: str) -> None:
    """Allocate the requested address (stored form); a concurrent winner shows up as
    IntegrityError."""
    owner = conn.execute(
        sa.select(ip_allocations.c.port_id).where(
            ip_allocations.c.subnet_id == subnet_id, ip_allocations.c.ip == ip
        )
    ).scalar()
    if owner is not None:
        raise IpAddressAlreadyAllocated(
            f"IP address {ip_str(cidr, ip)} already allocated in subnet {subnet_id}"
        )
    conn.execute(
        sa.delete(freed_ips).where(freed_ips.c.subnet_id == subnet_id, freed_ips.c.ip == ip)
    )
    _insert(conn, subnet_id, ip, port_id)


def _insert(conn: Connection, subnet_id: str, ip: int, port_id: str) -> None:
    conn.execute(_insert_allocation, {"subnet_id": subnet_id, "ip": ip, "port_id": port_id})


def release(conn: Connection, port_id: str, keep: Set[tuple[str, int]] = frozenset()) -> None:
    """Move the port's addresses (except those in keep) to the freed list."""
    rows = conn.execute(
        sa.select(ip_allocations.c.subnet_id, ip_allocations.c.ip).where(
            ip_allocations.c.port_id == port_id
        )
    ).all()
    gone = [(r.subnet_id, r.ip) for r in rows if (r.subnet_id, r.ip) not in keep]
    if not gone:
        return
    now = time.time()
    for subnet_id, ip in gone:
        conn.execute(
            sa.delete(ip_allocations).where(
                ip_allocations.c.subnet_id == subnet_id, ip_allocations.c.ip == ip
            )
        )
    conn.execute(
        sa.insert(freed_ips), [{"subnet_id": s, "ip": i, "freed_at": now} for s, i in gone]
    )


def random_mac(prefix: str) -> str:
    """A random MAC under the configured prefix. Not checked here: the (network, MAC)
    unique constraint catches the rare collision and the transaction is retried."""
    tail = random.getrandbits(24)
    return f"{prefix}:{tail >> 16:02x}:{(tail >> 8) & 0xFF:02x}:{tail & 0xFF:02x}"


def mac_in_use(conn: Connection, network_id: str, mac: str, except_port: str | None = None) -> bool:
    query = sa.select(ports.c.id).where(
        ports.c.network_id == network_id, ports.c.mac_address == mac
    )
    if except_port:
        query = query.where(ports.c.id != except_port)
    return conn.execute(query).first() is not None


def check_mac_free(
    conn: Connection, network_id: str, mac: str, except_port: str | None = None
) -> None:
    if mac_in_use(conn, network_id, mac, except_port):
        raise MacAddressInUse(
            f"Unable to complete operation for network {network_id}. "
            f"The mac address {mac} is in use."
        )


def pools_for(cidr: Net, gateway: Address | None, given: list[dict] | None) -> list[Pool]:
    """Validated allocation pools, stored form: given ones, or (as Neutron) the subnet
    minus its first address (IPv4: also its broadcast address) and the gateway."""
    text = str(cidr)
    first_host = int(cidr.network_address) + 1
    last_host = int(cidr.broadcast_address) - (1 if cidr.version == 4 else 0)
    gw = int(gateway) if gateway is not None else None
    if given is None:
        pools: list[tuple[int, int]] = []
        if gw is None or not first_host <= gw <= last_host:
            pools = [(first_host, last_host)]
        else:
            if gw > first_host:
                pools.append((first_host, gw - 1))
            if gw < last_host:
                pools.append((gw + 1, last_host))
        return [(_stored(text, a), _stored(text, b)) for a, b in pools]
    pools = []
    for pool in given:
        start, end = pool["start"], pool["end"]
        try:
            first, last = int(ipaddress.ip_address(start)), int(ipaddress.ip_address(end))
            family = {ipaddress.ip_address(start).version, ipaddress.ip_address(end).version}
        except ValueError:
            family = set()
        if family != {cidr.version}:
            raise InvalidInput(
                f"Invalid input for allocation_pools. Reason: {start!r}-{end!r} is not a range "
                f"of IPv{cidr.version} addresses."
            )
        if first > last:
            raise InvalidInput(f"Invalid allocation pool {start}-{end}: start is after end.")
        if first < first_host or last > last_host:
            raise InvalidInput(
                f"The allocation pool {start}-{end} spans beyond the subnet cidr {cidr} "
                "(the network's first address and, on IPv4, its broadcast address are not "
                "allocatable)."
            )
        if gw is not None and first <= gw <= last:
            raise InvalidInput(
                f"Gateway ip {ipaddress.ip_address(gw)} conflicts with allocation pool "
                f"{start}-{end}."
            )
        pools.append((first, last))
    pools.sort()
    for (_, last), (first, _) in itertools.pairwise(pools):
        if first <= last:
            raise InvalidInput(f"Found overlapping allocation pools in subnet {cidr}.")
    if not pools:
        raise InvalidInput("allocation_pools must not be empty.")
    return [(_stored(text, a), _stored(text, b)) for a, b in pools]


def _stored(cidr: str, value: int) -> int:
    """encode() of an address given as its integer."""
    net = network(cidr)
    return value if net.version == 4 else value - int(net.network_address) - V6_SHIFT


def pool_size(pools: Sequence[Pool]) -> int:
    """The number of addresses in the pools (any size: a /64 has 2**64 - 2)."""
    return sum(b - a + 1 for a, b in pools)
