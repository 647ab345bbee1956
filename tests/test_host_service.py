"""The host service reports a new bridge the moment it appears (netlink), not at its
next heartbeat: a network set up on a host is placed, and a port created right
after waits for its server instead of answering DOWN (DESIGN.md flow 4)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, rand
from ipam.polling import wait_for
from tests.agentlab import host_heartbeats, reported_at

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
