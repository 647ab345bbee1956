"""The host service reports a new bridge the moment it appears (netlink), not at its
next heartbeat: a network set up on a host is placed, and a port created right
after waits for its server instead of answering DOWN (DESIGN.md flow 4)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ipam import contracts
from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, rand
from ipam.messaging import Bus
from ipam.polling import wait_for


def test_a_new_bridge_is_reported_at_once(tmp_path: Path) -> None:
    url = f"filesystem://{tmp_path}/bus"
    bus, stop, beats = Bus(url), threading.Event(), []

    def on_message(env: contracts.Envelope, body: object) -> None:
        if env.type == "host.heartbeat":
            beats.append((time.monotonic(), list(body.bridges)))  # type: ignore[attr-defined]

    consumer = threading.Thread(
        target=bus.consume, args=(contracts.ENGINE_QUEUE, on_message, stop), daemon=True
    )
    consumer.start()
    segment = Bridge()
    # Heartbeats a minute apart: only the netlink watch can report the bridge in time.
    host = LabHost(tmp_path, f"h{rand(4)}", url, {}, extra_conf="[host]\nheartbeat_interval = 60\n")
    try:
        wait_for(lambda: beats, 20, "the first heartbeat")
        vdsm = f"vb{rand(6)}"
        host.add_bridge(vdsm, segment.name)
        added = time.monotonic()
        at, _ = wait_for(
            lambda: next(((t, b) for t, b in beats if vdsm in b), None), 5, "the bridge reported"
        )
        assert at - added < 1.0  # not the next periodic heartbeat, 60 s away
    finally:
        host.close()
        segment.remove()
        stop.set()
        consumer.join(5)
        bus.close()
