"""Messages that could not be sent yet, kept in order and sent again.

A store change is committed before its event is published, and a port is loaded
into dnsmasq before its acknowledgement is published: when the broker is away
(restarting, unreachable) the message must wait, not vanish. ``Outbox.send``
publishes at once when nothing is waiting; otherwise, or when publishing fails,
the message joins the queue, which a thread of its own sends in order, with
backoff, until the broker takes it. The queue is bounded: past ``limit`` the oldest
message is dropped with an error (agents also resync periodically and after
reconnecting, which repairs what a dropped event would have said).
"""

from __future__ import annotations

import collections
import logging
import threading

from ipam.bus.contracts import Envelope
from ipam.bus.messaging import Bus

LOG = logging.getLogger(__name__)


class Outbox:
    def __init__(
        self, bus: Bus, limit: int = 100_000, backoff: float = 0.2, max_backoff: float = 5.0
    ) -> None:
        self.bus, self.limit = bus, limit
        self.backoff, self.max_backoff = backoff, max_backoff
        self._held: collections.deque[tuple[str, Envelope]] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, queue: str, env: Envelope) -> None:
        """Publish env to queue now, or hold it (in order) for the sending thread.
        Never raises for a transport failure."""
        with self._lock:
            if self._held:
                self._hold(queue, env)
                return
        try:
            self.bus.publish(queue, env)
        except Exception as exc:
            with self._lock:
                if not self._held:
                    LOG.warning(
                        "Bus %s: cannot send %s %s to %s (%s: %s); holding it and what "
                        "follows until the bus takes them",
                        self.bus.safe_url,
                        env.type,
                        env.id,
                        queue,
                        type(exc).__name__,
                        exc,
                    )
                self._hold(queue, env)

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _hold(self, queue: str, env: Envelope) -> None:
        if len(self._held) >= self.limit:
            dropped_queue, dropped = self._held.popleft()
            LOG.error(
                "Outbox full (%d messages): dropped %s %s for %s; the agent's next resync "
                "repairs it",
                self.limit,
                dropped.type,
                dropped.id,
                dropped_queue,
            )
        self._held.append((queue, env))
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay, sent = self.backoff, 0
        while not self._stop.is_set():
            with self._lock:
                if not self._held:
                    LOG.info("Bus %s: sent %d held message(s); none left", self.bus.safe_url, sent)
                    return
                queue, env = self._held[0]
            try:
                self.bus.publish(queue, env)
            except Exception as exc:
                LOG.debug("Outbox: %s %s still not sent: %s", env.type, env.id, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            with self._lock:
                if self._held and self._held[0][1] is env:
                    self._held.popleft()
            delay, sent = self.backoff, sent + 1
