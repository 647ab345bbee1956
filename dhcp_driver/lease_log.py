"""Lease facts from dnsmasq's DHCP log lines, for the engine (issue 17).

dnsmasq logs each DHCPv4 exchange as ``TYPE(IFACE) [ADDR ]MAC [TEXT]``
(rfc2131.c, log_packet), and ``disabling DHCP static address ADDR for TIME`` when
a client declined its static address. The grammar here is strict: a line shaped
like a packet log that does not parse is counted and logged, never turned into a
fact; text a client chose (a DECLINE's message, a hostname) is never kept. DHCPv6
exchanges name clients by DUID, not MAC: they are recognised and left out.

A tracker keeps the latest fact per MAC that the engine has not had yet, so a
client retrying a hundred times is one fact per batch, not a hundred messages.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from ipam.bus.contracts import LEASE_TIME_INFINITE, LeaseFact, LeaseState, is_mac

LOG = logging.getLogger(__name__)

_MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
#: A DHCPv4 packet log, with or without log-dhcp's transaction id.
_PACKET4 = re.compile(
    rf"dnsmasq-dhcp\[\d+\]: (?:\d+ )?(?P<type>DHCP[A-Z]+|BOOTP|NOANSWER)\([^)]*\) "
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


class LeaseTracker:
    """Turns log lines into pending facts; ``take`` hands them over as a batch."""

    def __init__(self, lease_time: int) -> None:
        self.lease_time = lease_time  # seconds, or LEASE_TIME_INFINITE
        self.pending: dict[str, LeaseFact] = {}
        self.unparsed = 0
        self.rebuilt = False

    def feed(self, line: str, now: float | None = None) -> None:
        """One log line (any: lines that are not DHCP exchanges are ignored)."""
        if "dnsmasq-dhcp[" not in line:
            return
        seen = time.time() if now is None else now
        match = _PACKET4.search(line)
        if match is not None:
            self._packet(match, seen)
            return
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
        self.pending[mac] = LeaseFact(
            mac_address=mac,
            ip_address=ip,
            state=state,
            seen_at=seen,
            expires_at=expires,
            reason=reason,
        )

    def rebuild(self, leases: Path) -> None:
        """Every bound IPv4 lease of dnsmasq's lease file (after a start or an
        adoption): the engine then forgets what this host held before."""
        self.pending.clear()
        self.rebuilt = True
        try:
            lines = leases.read_text().splitlines()
        except FileNotFoundError:
            return
        now = time.time()
        for line in lines:
            fields = line.split()
            if fields[:1] == ["duid"]:
                break  # IPv6 leases follow
            if len(fields) < 3 or not fields[0].isdigit() or not is_mac(fields[1]):
                continue
            if not re.fullmatch(_IPV4, fields[2]):
                continue
            expiry = int(fields[0])
            if expiry and expiry < now:
                continue
            self.pending[fields[1]] = LeaseFact(
                mac_address=fields[1],
                ip_address=fields[2],
                state="bound",
                seen_at=now,
                expires_at=float(expiry) if expiry else None,
            )

    def take(self) -> tuple[list[LeaseFact], int, bool] | None:
        """(facts, unparsed, rebuilt) since the last take, or None if nothing new."""
        if not self.pending and not self.unparsed and not self.rebuilt:
            return None
        out = (list(self.pending.values()), self.unparsed, self.rebuilt)
        self.pending, self.unparsed, self.rebuilt = {}, 0, False
        return out
