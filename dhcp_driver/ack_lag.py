"""How far a network's worker is behind the engine's port changes (issue 17's
``ack lag`` per host): the age of the oldest change it received and has not
acknowledged, or the slowest acknowledgement since the last report, whichever is
more. Reported in each heartbeat (ServedNetworkReport.ack_lag_s), so the engine's
/metrics shows it without a scrape target on the host.

A change is timed from when the bus handed it to the agent, so time spent queued
behind other work counts. One that is never acknowledged (dnsmasq rejected it) keeps
the lag growing: that is a port the host does not serve. A deleted port, or one a
full sync no longer lists, is forgotten, and so is a change older than one already
acknowledged (the worker ignores it). DHCP ports are not acknowledged: the agent
does not count them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable


class AckLag:
    """Receipt times of unacknowledged port changes; safe across threads (the bus's
    thread receives, the worker acknowledges, the heartbeat reports)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # port id -> (first unacknowledged receipt, latest revision received)
        self._received: dict[str, tuple[float, int]] = {}
        # port id -> the revision last acknowledged, or deleted: a change that arrives
        # late (the worker ignores it as stale) is owed nothing
        self._done: dict[str, int] = {}
        self._slowest = 0.0

    def received(self, port_id: str, revision: int, at: float | None = None) -> None:
        """A change of this port arrived (an earlier unacked one keeps its time)."""
        now = time.monotonic() if at is None else at
        with self._lock:
            if revision <= self._done.get(port_id, -1):
                return
            since, latest = self._received.get(port_id, (now, revision))
            self._received[port_id] = (since, max(latest, revision))

    def acked(self, ports: Iterable[tuple[str, int]], at: float | None = None) -> None:
        """(port id, revision) acknowledged: owed no more once the latest revision
        received is acknowledged."""
        now = time.monotonic() if at is None else at
        with self._lock:
            for port_id, revision in ports:
                self._done[port_id] = max(revision, self._done.get(port_id, -1))
                owed = self._received.get(port_id)
                if owed is not None and revision >= owed[1]:
                    del self._received[port_id]
                    self._slowest = max(self._slowest, now - owed[0])

    def forget(self, port_id: str, revision: int) -> None:
        """The port is gone (at this revision): nothing is owed for it."""
        with self._lock:
            self._received.pop(port_id, None)
            self._done[port_id] = max(revision, self._done.get(port_id, -1))

    def keep_only(self, port_ids: Iterable[str]) -> None:
        """A full sync: changes of ports it does not list are owed no more."""
        wanted = set(port_ids)
        with self._lock:
            self._received = {p: t for p, t in self._received.items() if p in wanted}
            self._done = {p: r for p, r in self._done.items() if p in wanted}

    def report(self, at: float | None = None) -> float:
        """Seconds behind now; starts a new window for the slowest acknowledgement."""
        now = time.monotonic() if at is None else at
        with self._lock:
            oldest = min((t for t, _ in self._received.values()), default=now)
            lag = max(self._slowest, now - oldest, 0.0)
            self._slowest = 0.0
        return lag
