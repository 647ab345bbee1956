"""Wake-ups between the engine process and its API workers ([api] workers > 1).

The engine process consumes the bus and runs the DHCP manager; a worker serves
requests. Without a word between them, a worker would learn of an acknowledgement
only by reading the store every ``Readiness`` poll, keep a stale copy of the agents'
subscriptions for up to a second (Notifier), and never wake the manager when a
port waits for a DHCP server. So they exchange one-byte datagrams over Unix
sockets in the abstract namespace (nothing on disk to clean up, gone with the
process): the Hub, in the engine process, at an address its workers are given;
each worker's Link at an address the kernel picks, announced to the Hub by HELLO.

A wake-up only says "look again": it carries no data, a lost or spurious one costs
a store read, and the store stays the only truth (the Readiness poll remains for
what other engines record).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable

LOG = logging.getLogger(__name__)

HELLO = b"h"  # worker -> hub: send me the wake-ups
MANAGER = b"m"  # worker -> hub: a port waits for a DHCP server / the topology changed
ACKS = b"a"  # hub -> workers: acknowledgements were recorded
SUBSCRIPTIONS = b"s"  # hub -> workers: the agents' subscriptions changed

#: How often a quiet Link checks that its engine process still lives, and says HELLO
#: again (a datagram the hub had no room for is dropped).
_RECV_TIMEOUT = 1.0


def _socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)


class _Endpoint:
    """A datagram socket served by a thread of its own (either end of the channel)."""

    def __init__(self, address: bytes) -> None:
        self._sock = _socket()
        self._sock.bind(address)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _serve(self) -> None:
        raise NotImplementedError

    def _start_thread(self, name: str) -> None:
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._thread is not None:
            self._thread.join(2)


class Hub(_Endpoint):
    """The engine process's end: relays ACKS and SUBSCRIPTIONS to every worker that
    said HELLO, and calls ``on_manager`` for MANAGER."""

    def __init__(self, on_manager: Callable[[], None] | None = None) -> None:
        self.on_manager = on_manager
        self.address = b"\0ovirt-ipam-" + secrets.token_hex(8).encode()
        super().__init__(self.address)
        self._workers: set[bytes] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._start_thread("wakeup-hub")

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(16)
            except OSError:
                return  # closed by stop()
            if data == HELLO and sender:
                with self._lock:
                    self._workers.add(sender)
                LOG.debug("API worker at %r listens for wake-ups", sender)
            elif data == MANAGER and self.on_manager is not None:
                self.on_manager()

    def acks_recorded(self) -> None:
        self._broadcast(ACKS)

    def subscriptions_changed(self) -> None:
        self._broadcast(SUBSCRIPTIONS)

    def _broadcast(self, what: bytes) -> None:
        with self._lock:
            workers = list(self._workers)
        for address in workers:
            try:
                self._sock.sendto(what, socket.MSG_DONTWAIT, address)
            except BlockingIOError:
                pass  # its queue is full of wake-ups: it will look again anyway
            except (ConnectionRefusedError, FileNotFoundError):
                with self._lock:
                    self._workers.discard(address)  # a worker that ended
            except OSError as exc:
                LOG.warning("Could not wake API worker at %r: %s", address, exc)


class Link(_Endpoint):
    """A worker's end: calls ``on_acks`` / ``on_subscriptions`` for what the Hub
    relays; ``wake_manager()`` asks the engine process to wake the DHCP manager.
    When the engine process is gone (its pid no longer our parent), the worker ends
    itself with SIGTERM: a worker without a bus server would wait for acks in vain."""

    def __init__(
        self,
        hub: bytes,
        engine_pid: int,
        on_acks: Callable[[], None] | None = None,
        on_subscriptions: Callable[[], None] | None = None,
    ) -> None:
        self.hub, self.engine_pid = hub, engine_pid
        self.on_acks, self.on_subscriptions = on_acks, on_subscriptions
        super().__init__(b"")  # autobind: an abstract address the kernel picks
        self._sock.settimeout(_RECV_TIMEOUT)

    def start(self) -> None:
        self._send(HELLO)
        self._start_thread("wakeup-link")

    def wake_manager(self) -> None:
        self._send(MANAGER)

    def _send(self, what: bytes) -> None:
        try:
            self._sock.sendto(what, socket.MSG_DONTWAIT, self.hub)
        except OSError as exc:  # the hub's queue is full, or it is gone (see _serve)
            LOG.debug("Wake-up %r to the engine process not sent: %s", what, exc)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(16)
            except TimeoutError:
                if os.getppid() != self.engine_pid:
                    LOG.error("Engine process %d is gone: this API worker ends", self.engine_pid)
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                self._send(HELLO)  # quiet for a second: in case the first was lost
                continue
            except OSError:
                return  # closed by stop()
            callback = {ACKS: self.on_acks, SUBSCRIPTIONS: self.on_subscriptions}.get(data)
            if callback is not None:
                callback()
