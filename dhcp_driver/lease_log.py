"""Lease facts from dnsmasq's DHCP log lines, for the engine (issue 17).

dnsmasq logs each DHCPv4 exchange as ``TYPE(IFACE) [ADDR ]MAC [TEXT]``
(rfc2131.c, log_packet), and ``disabling DHCP static address ADDR for TIME`` when
a client declined its static address. The grammar here is strict: a line shaped
like a packet log that does not parse is counted and logged, never turned into a
fact; free text a client chose (a DECLINE's message) is never kept. DHCPv6
exchanges name clients by DUID, not MAC: they are recognised and left out.

What a client says of itself is kept, checked, as data (never as its name):
- the hostname it sent: ``--log-dhcp`` logs ``XID client provides name: NAME``
  before the exchange's packet lines, which carry the same XID (rfc2131.c; the
  ``dhcp-ignore-names`` that keeps the name out of leases and DNS also keeps it
  out of the ACK line);
- its client id: only dnsmasq's lease file holds it (``EXPIRY MAC IP NAME CLID``).
  dnsmasq rewrites the file right after it logs the ACK and before it sends it
  (dhcp.c), so a bound fact whose lease is not in the file yet waits a tick or two.

A tracker keeps the latest fact per MAC that the engine has not had yet, so a
client retrying a hundred times is one fact per batch, not a hundred messages.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from pathlib import Path

from ipam.bus.contracts import (
    LEASE_TIME_INFINITE,
    LeaseFact,
    LeaseState,
    is_client_hostname,
    is_client_id,
    is_mac,
)

LOG = logging.getLogger(__name__)

_MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
#: A DHCPv4 packet log, with or without log-dhcp's transaction id.
_PACKET4 = re.compile(
    rf"dnsmasq-dhcp\[\d+\]: (?:(?P<xid>\d+) )?(?P<type>DHCP[A-Z]+|BOOTP|NOANSWER)\([^)]*\) "
    rf"(?:(?P<ip>{_IPV4}) )?(?P<mac>{_MAC}) ?(?P<text>.*)$"
)
#: A DHCPv6 or router advertisement log (an IPv6 address or a DUID first): known,
#: not a fact (no MAC to join on).
_PACKET6 = re.compile(
    r"dnsmasq-dhcp\[\d+\]: (?:\d+ )?(?:DHCP(?:SOLICIT|ADVERTISE|REQUEST|CONFIRM|RENEW|REBIND|"
    r"REPLY|RELEASE|DECLINE|RECONFIGURE|INFORMATION-REQUEST)|RTR-[A-Z]+)\([^)]*\) \S*:"
)
#: Anything shaped like a packet log.
_PACKET_SHAPE = re.compile(r"dnsmasq-dhcp\[\d+\]: (?:\d+ )?[A-Z][A-Z-]*\(")
#: log-dhcp's line for the hostname a client sent (checked by is_client_hostname).
_NAME = re.compile(r"dnsmasq-dhcp\[\d+\]: (?P<xid>\d+) client provides name: (?P<name>.*)$")
_DISABLED = re.compile(rf"dnsmasq-dhcp\[\d+\]: disabling DHCP static address (?P<ip>{_IPV4}) for ")

#: Packet type -> the state it leaves the client in, for the ones that change it.
_STATES: dict[str, LeaseState] = {
    "DHCPOFFER": "offered",
    "DHCPACK": "bound",
    "DHCPNAK": "nak",
    "DHCPRELEASE": "released",
    "DHCPDECLINE": "declined",
}
#: dnsmasq's own reasons for a NAK (rfc2131.c), the only text kept.
_NAK_REASON = re.compile(r"[a-z][a-z -]{0,60}")


#: Names waiting for their exchange's answer, by XID (a bounded memory: a client
#: that never gets one must not grow it).
_MAX_NAMES = 1024
#: Ticks a bound fact waits for its lease to show in the lease file.
_CLID_WAIT_TICKS = 2


class LeaseTracker:
    """Turns log lines into pending facts; ``take`` hands them over as a batch.

    ``leases`` is dnsmasq's lease file, where bound facts find their client id.
    """

    def __init__(self, lease_time: int, leases: Path | None = None) -> None:
        self.lease_time = lease_time  # seconds, or LEASE_TIME_INFINITE
        self.leases = leases
        self.pending: dict[str, LeaseFact] = {}
        self.unparsed = 0
        self.rebuilt = False
        self._names: OrderedDict[str, str] = OrderedDict()  # XID -> hostname sent
        self._waited: dict[str, int] = {}  # MAC -> ticks its bound fact waited
        self._file_key: tuple[int, int, int] | None = None
        self._file: dict[str, tuple[str, str | None]] = {}  # MAC -> (IPv4, client id)

    def feed(self, line: str, now: float | None = None) -> None:
        """One log line (any: lines that are not DHCP exchanges are ignored)."""
        if "dnsmasq-dhcp[" not in line:
            return
        seen = time.time() if now is None else now
        match = _PACKET4.search(line)
        if match is not None:
            self._packet(match, seen)
            return
        named = _NAME.search(line)
        if named is not None:
            if is_client_hostname(named["name"]):
                self._names[named["xid"]] = named["name"]
                self._names.move_to_end(named["xid"])
                while len(self._names) > _MAX_NAMES:
                    self._names.popitem(last=False)
            return  # a name that fails the check is dropped: the exchange still counts
        disabled = _DISABLED.search(line)
        if disabled is not None:
            # Follows the DECLINE of the same address: already a fact.
            return
        if _PACKET6.search(line) is None and _PACKET_SHAPE.search(line) is not None:
            self.unparsed += 1
            LOG.warning("Unexpected dnsmasq DHCP log line (not used): %r", line[:200])

    def _packet(self, match: re.Match[str], seen: float) -> None:
        state = _STATES.get(match["type"])
        mac, ip = match["mac"], match["ip"]
        if state is None:
            return  # DISCOVER, REQUEST, INFORM: the answer is the fact
        if state != "released" and ip is None:  # the grammar already checked the MAC
            self.unparsed += 1
            LOG.warning("Unexpected dnsmasq DHCP log line (not used): %r", match.group(0)[:200])
            return
        reason = None
        if state == "nak":
            text = match["text"].strip()
            reason = text if _NAK_REASON.fullmatch(text) else None
        expires = None
        if state == "bound" and self.lease_time != LEASE_TIME_INFINITE:
            expires = seen + self.lease_time
        name = self._names.pop(match["xid"], None) if match["xid"] else None
        self.pending[mac] = LeaseFact(
            mac_address=mac,
            ip_address=ip,
            state=state,
            seen_at=seen,
            expires_at=expires,
            reason=reason,
            client_hostname=name,
        )
        self._waited.pop(mac, None)

    def rebuild(self, leases: Path) -> None:
        """Every bound IPv4 lease of dnsmasq's lease file (after a start or an
        adoption): the engine then forgets what this host held before."""
        self.pending.clear()
        self._waited.clear()
        self.rebuilt = True
        now = time.time()
        for mac, (ip, expiry, clid) in _read_leases(leases).items():
            if expiry and expiry < now:
                continue
            self.pending[mac] = LeaseFact(
                mac_address=mac,
                ip_address=ip,
                state="bound",
                seen_at=now,
                expires_at=float(expiry) if expiry else None,
                client_id=clid,
            )

    def _client_ids(self) -> dict[str, tuple[str, str | None]]:
        """MAC -> (IPv4, client id) from the lease file, read again only when it
        changed (dnsmasq replaces it on every lease change)."""
        if self.leases is None:
            return {}
        try:
            st = os.stat(self.leases)
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._file_key:
            self._file_key = key
            self._file = {m: (ip, c) for m, (ip, _, c) in _read_leases(self.leases).items()}
        return self._file

    def take(self) -> tuple[list[LeaseFact], int, bool] | None:
        """(facts, unparsed, rebuilt) since the last take, or None if nothing new.

        A bound fact goes with the client id of its lease; one whose lease the file
        does not show yet waits up to _CLID_WAIT_TICKS takes, then goes without.
        """
        if not self.pending and not self.unparsed and not self.rebuilt:
            return None
        held = {}
        if self.leases is not None and any(
            f.state == "bound" and f.client_id is None for f in self.pending.values()
        ):
            held = self._client_ids()
        facts, waiting = [], {}
        for mac, fact in self.pending.items():
            if fact.state == "bound" and fact.client_id is None and self.leases is not None:
                entry = held.get(mac)
                if entry is not None and entry[0] == fact.ip_address:
                    if entry[1] is not None:
                        fact = fact.model_copy(update={"client_id": entry[1]})
                elif self._waited.get(mac, 0) < _CLID_WAIT_TICKS:
                    self._waited[mac] = self._waited.get(mac, 0) + 1
                    waiting[mac] = fact
                    continue
            self._waited.pop(mac, None)
            facts.append(fact)
        if not facts and not self.unparsed and not self.rebuilt:
            self.pending = waiting
            return None
        out = (facts, self.unparsed, self.rebuilt)
        self.pending, self.unparsed, self.rebuilt = waiting, 0, False
        return out


def _read_leases(path: Path) -> dict[str, tuple[str, int, str | None]]:
    """MAC -> (IPv4, expiry (0: never), client id) of dnsmasq's lease file; lines
    that do not follow its grammar are skipped, IPv6 leases (after ``duid``) too."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    out = {}
    for line in lines:
        fields = line.split()
        if fields[:1] == ["duid"]:
            break  # IPv6 leases follow
        if len(fields) < 3 or not fields[0].isdigit() or not is_mac(fields[1]):
            continue
        if not re.fullmatch(_IPV4, fields[2]):
            continue
        clid = fields[4] if len(fields) > 4 and is_client_id(fields[4]) else None
        out[fields[1]] = (fields[2], int(fields[0]), clid)
    return out
