"""DHCPv6 messages a client sends when its lease is due (RENEW, REBIND, and the
REQUEST that follows a NoBinding answer), built and sent by hand from a VM's
namespace: ISC dhclient sends them only at T1 and T2, which dnsmasq puts a minute
and more into a lease (RFC 8415 layouts)."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

from dhcp_driver.netns import entered

REQUEST, RENEW, REBIND, REPLY = 3, 5, 6, 7
NO_BINDING = 3
CLIENTID, SERVERID, IA_NA, IAADDR, ELAPSED_TIME, STATUS_CODE = 1, 2, 3, 5, 8, 13
SERVER_PORT, CLIENT_PORT, ALL_SERVERS = 547, 546, "ff02::1:2"


@dataclass(frozen=True)
class Reply:
    server_duid: bytes
    addresses: dict[str, int]  # address -> valid lifetime
    status: int | None  # the IA's status code, when it has one (3: NoBinding)


def _option(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


def _options(data: bytes) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    while len(data) >= 4:
        code, length = struct.unpack("!HH", data[:4])
        out.setdefault(code, []).append(data[4 : 4 + length])
        data = data[4 + length :]
    return out


def hexbytes(text: str) -> bytes:
    """``00:01:...`` (dnsmasq's lease file) as bytes."""
    return bytes.fromhex(text.replace(":", ""))


def exchange(
    namespace: str,
    msg_type: int,
    client_duid: bytes,
    iaid: int,
    address: str,
    server_duid: bytes | None = None,
    timeout: float = 3.0,
) -> Reply | None:
    """Send one REQUEST or RENEW (with server_duid) or REBIND for the address from eth0
    of the namespace; the server's REPLY, or None when none came within timeout."""
    xid = os.urandom(3)
    ia = struct.pack("!III", iaid, 0, 0) + _option(
        IAADDR, ipaddress.IPv6Address(address).packed + struct.pack("!II", 0, 0)
    )
    body = _option(CLIENTID, client_duid) + _option(ELAPSED_TIME, b"\0\0")
    if server_duid is not None:
        body += _option(SERVERID, server_duid)
    packet = bytes([msg_type]) + xid + body + _option(IA_NA, ia)
    with entered(namespace):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", CLIENT_PORT))
        sock.settimeout(timeout)
        with entered(namespace):
            index = socket.if_nametoindex("eth0")
        sock.sendto(packet, (ALL_SERVERS, SERVER_PORT, 0, index))
        while True:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                return None
            if data[0] == REPLY and data[1:4] == xid:
                break
    options = _options(data[4:])
    addresses, status = {}, None
    for ia_data in options.get(IA_NA, []):
        inner = _options(ia_data[12:])
        for a in inner.get(IAADDR, []):
            addresses[str(ipaddress.IPv6Address(a[:16]))] = struct.unpack("!I", a[20:24])[0]
        for st in inner.get(STATUS_CODE, []):
            status = struct.unpack("!H", st[:2])[0]
    return Reply(options.get(SERVERID, [b""])[0], addresses, status)
