"""The host service reports a new bridge the moment it appears (netlink), not at its
next heartbeat: a network set up on a host is placed, and a port created right
after waits for its server instead of answering DOWN (DESIGN.md flow 4)."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, rand
from ipam.polling import wait_for
from tests.agentlab import host_heartbeats, reported_at
from vdsm_verb.host_service import bridge_events

pytestmark = pytest.mark.root


def test_a_new_bridge_is_reported_at_once(tmp_path: Path) -> None:
    url = f"filesystem://{tmp_path}/bus"
    segment = Bridge()
    with host_heartbeats(url) as beats:
        # Heartbeats a minute apart: only the netlink watch can report the bridge in time.
        conf = "[host]\nheartbeat_interval = 60\n"
        host = LabHost(tmp_path, f"h{rand(4)}", url, {}, extra_conf=conf)
        try:
            wait_for(lambda: beats, 20, "the first heartbeat")
            vdsm = f"vb{rand(6)}"
            host.add_bridge(vdsm, segment.name)
            added = time.monotonic()
            assert reported_at(beats, vdsm) - added < 1.0  # not the periodic one, 60 s away
        finally:
            host.close()
            segment.remove()


def _link_message(kind: int, family: int, link_kind: bytes | None) -> bytes:
    """One RTM_NEWLINK (16) or RTM_DELLINK (17) as the kernel sends it: nlmsghdr,
    ifinfomsg, an IFLA_IFNAME and (for a device with a kind) IFLA_LINKINFO holding
    IFLA_INFO_KIND."""

    def attr(kind: int, payload: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(payload), kind) + payload
        return raw + b"\0" * (-len(raw) % 4)

    attrs = attr(3, b"x0\0")  # IFLA_IFNAME
    if link_kind is not None:
        attrs += attr(18, attr(1, link_kind + b"\0"))  # IFLA_LINKINFO(IFLA_INFO_KIND)
    body = struct.pack("=BxHiII", family, 1, 7, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_only_a_bridge_s_own_link_messages_have_the_bridges_listed_again() -> None:
    """The messages of a bridge's ports (veths, the bridge module's AF_BRIDGE ones) come
    by the dozen as VMs start: they do not make the host service list its bridges again
    (issue 18); a bridge's own messages, and any deletion, do."""
    new, gone = 16, 17
    veth = _link_message(new, socket.AF_UNSPEC, b"veth")
    port = _link_message(new, socket.AF_BRIDGE, None)
    bridge = _link_message(new, socket.AF_UNSPEC, b"bridge")
    assert bridge_events(veth) is False
    assert bridge_events(port) is False
    assert bridge_events(veth + port) is False
    assert bridge_events(bridge) is True
    assert bridge_events(veth + port + bridge) is True  # one read holds several
    assert bridge_events(_link_message(gone, socket.AF_UNSPEC, b"veth")) is True
    assert bridge_events(_link_message(gone, socket.AF_BRIDGE, None)) is False
    assert bridge_events(b"\x08\0\0\0") is False  # truncated: nothing to go on
