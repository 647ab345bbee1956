"""The message bus (kombu), used by the engine and the agents alike.

Every message goes through the AMQP *default* exchange with ``routing_key`` equal
to the queue name, so it behaves the same on every transport: kombu's virtual
transports (filesystem) keep exchange bindings per process, the default exchange
needs none. Queues are durable and named by ipam.bus.contracts.

``filesystem://<absolute path>`` is kombu's filesystem transport with all
messages in that directory (created 0700). Its file names are ordered by a
monotonic nanosecond stamp (kombu's own are ordered by the millisecond only, and
messages of one millisecond come out in random order), written under a dot name
and renamed into place (kombu's reader could see a half-written file), and
claimed by rename (so two consumers of a queue never both get one message).
``amqp://`` and ``amqps://`` URLs go to RabbitMQ as they are, with publisher
confirms.

Messages are decoded with ipam.bus.contracts.decode on receipt: a malformed one is
logged with its reason and dropped, a handler that raises is logged with its
traceback, and the consumer goes on with the next message either way.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from queue import Empty
from typing import Any
from urllib.parse import urlsplit

import kombu
from inotify_simple import INotify
from inotify_simple import flags as inotify_flags
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from pydantic import BaseModel

from ipam.bus import contracts
from ipam.bus.contracts import ContractError, Envelope

LOG = logging.getLogger(__name__)

Handler = Callable[[Envelope, BaseModel], None]

DRAIN_TIMEOUT = 0.2  # consume() notices stop within about this
PREFETCH = 64
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.4, "interval_max": 1}
RECONNECT_MAX = 10.0
CONNECT_TIMEOUT = 5.0
AMQP_HEARTBEAT = 30

_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@;]*@")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ****, fit for a log line."""
    return _PASSWORD.sub(r"\1****@", url)


# -- the filesystem transport, ordered and atomic --------------------------------------


class _OrderedChannel(filesystem.Channel):
    _seq = itertools.count()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, deque[str]] = {}

    # kombu's filesystem.Channel names _put's second parameter payload, its base
    # AbstractChannel message: no signature matches both.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        ns = time.monotonic_ns()
        name = f"{ns:020d}_{next(self._seq) % 1_000_000:06d}{uuid.uuid4().hex}.{queue}.msg"
        folder = self.data_folder_out
        tmp = os.path.join(folder, "." + name)
        try:
            with open(tmp, "wb") as f:
                f.write(json.dumps(payload).encode())
            os.rename(tmp, os.path.join(folder, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ChannelError(f"cannot add message file {name!r} to {folder}: {exc}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        folder = self.data_folder_in
        suffix = f"{queue}.msg"
        pending = self._pending.get(queue)
        if not pending:
            try:
                names = os.listdir(folder)
            except OSError as exc:
                raise ChannelError(f"cannot list {folder}: {exc}") from exc
            pending = self._pending[queue] = deque(
                sorted(n for n in names if n[:1] != "." and n.partition(".")[2] == suffix)
            )
        while pending:
            name = pending.popleft()
            claimed = os.path.join(folder, f".claimed-{uuid.uuid4().hex}")
            try:
                os.rename(os.path.join(folder, name), claimed)
            except FileNotFoundError:
                continue  # another consumer took it
            except OSError as exc:
                raise ChannelError(f"cannot claim {name}: {exc}") from exc
            try:
                with open(claimed, "rb") as f:
                    raw = f.read()
            finally:
                os.unlink(claimed)
            try:
                return json.loads(raw)
            except ValueError as exc:
                LOG.warning("Dropped unreadable message file %s in %s: %s", name, folder, exc)
        raise Empty()


class _FolderWatch:
    """Wakes the consumers of one message directory when a message file for one of
    their queues arrives (its rename into the directory, named ``….QUEUE.msg``), so
    that an idle consumer sleeps instead of listing the directory every
    polling_interval, and is not woken by the messages of other queues (every
    process's heartbeats pass through the same directory). One inotify instance and
    one thread per directory and process; consumers wait on counters of arrivals."""

    RESCAN_S = 1.0  # a consumer looks anyway this often: nothing is left behind for long
    _watches: dict[tuple[int, str], _FolderWatch] = {}
    _lock = threading.Lock()

    @classmethod
    def of(cls, folder: str) -> _FolderWatch | None:
        """The process's watch of folder; None where inotify is not available (the
        transport then polls, as kombu's does)."""
        key = (os.getpid(), folder)  # a forked child needs its own thread
        with cls._lock:
            watch = cls._watches.get(key)
            if watch is None:
                try:
                    watch = cls._watches[key] = cls(folder)
                except OSError as exc:
                    LOG.warning("No inotify watch on %s (%s): polling it instead", folder, exc)
                    return None
            return watch

    def __init__(self, folder: str) -> None:
        self.inotify = INotify()
        try:
            self.inotify.add_watch(folder, inotify_flags.MOVED_TO | inotify_flags.CLOSE_WRITE)
        except OSError:
            self.inotify.close()
            raise
        self.counts: dict[str, int] = {}  # queue -> message files arrived for it
        self.overflows = 0  # events lost: every consumer must look
        self.cond = threading.Condition()
        threading.Thread(target=self._run, name=f"bus-watch {folder}", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                events = self.inotify.read()
            except OSError:
                LOG.exception("Reading the bus directory's inotify events failed")
                events = []
                time.sleep(self.RESCAN_S)
            queues = {
                e.name.partition(".")[2][: -len(".msg")]
                for e in events
                if e.name and not e.name.startswith(".") and e.name.endswith(".msg")
            }
            overflow = any(e.mask & inotify_flags.Q_OVERFLOW for e in events)
            if queues or overflow:
                with self.cond:
                    for queue in queues:
                        self.counts[queue] = self.counts.get(queue, 0) + 1
                    self.overflows += overflow
                    self.cond.notify_all()

    def arrivals(self, queues: Iterable[str]) -> int:
        """A count that grows whenever a message for one of the queues arrives."""
        with self.cond:
            return self.overflows + sum(self.counts.get(q, 0) for q in queues)

    def wait(self, queues: list[str], seen: int, timeout: float) -> bool:
        """Until a message for one of the queues arrived after ``seen`` was read
        (True), or timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.overflows + sum(self.counts.get(q, 0) for q in queues) != seen:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)


class OrderedFilesystemTransport(filesystem.Transport):
    """kombu's filesystem transport with ordered, atomically written message files, and
    consumers woken by inotify when a message arrives instead of polling the directory
    (kombu's own sleeps polling_interval between empty polls: 3-6 % of a core per
    idle process at 2 ms). Without inotify it polls as kombu's does."""

    Channel = _OrderedChannel
    driver_name = "ovirt-ipam-filesystem"

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        client, cycle = self.client, self.cycle
        folder = client.transport_options.get("data_folder_in") if client else None
        watch = _FolderWatch.of(folder) if folder else None
        if watch is None or cycle is None:
            super().drain_events(connection, timeout=timeout)
            return
        start = time.monotonic()
        queues = [q for channel in self.channels for q in channel._active_queues]
        while True:
            seen = watch.arrivals(queues)  # read before looking: no arrival is missed
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                left = None if timeout is None else timeout - (time.monotonic() - start)
                if left is not None and left <= 0:
                    raise TimeoutError() from None
                wait = _FolderWatch.RESCAN_S if left is None else min(left, _FolderWatch.RESCAN_S)
                if not watch.wait(queues, seen, wait) and left is not None and left <= wait:
                    raise TimeoutError() from None  # nothing arrived: no need to look again


def _ssl_options(url: str, tls: dict[str, str] | None) -> dict[str, Any]:
    """py-amqp's TLS options for amqps://: the broker's certificate is verified against
    ``ca_file`` (or the system's CAs) and must name the URL's host."""
    tls = tls or {}
    opts: dict[str, Any] = {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": urlsplit(url).hostname,
    }
    if tls.get("ca_file"):
        opts["ca_certs"] = tls["ca_file"]
    if tls.get("cert_file"):
        opts["certfile"] = tls["cert_file"]
        opts["keyfile"] = tls.get("key_file")
    return opts


def connection(
    url: str,
    polling_interval: float = 0.01,
    heartbeat: float = 0,
    name: str = "",
    tls: dict[str, str] | None = None,
) -> kombu.Connection:
    """A new kombu Connection for a transport URL (see the module doc); name is the
    connection name RabbitMQ shows (and rabbitmqctl lists as user_provided_name);
    tls the CA, certificate and key files for amqps://."""
    if url.startswith("filesystem://"):
        path = url[len("filesystem://") :]
        if not path.startswith("/"):
            raise ValueError(
                f"transport URL {url!r}: filesystem:// needs an absolute path "
                "(filesystem:///var/lib/ovirt-ipam/bus)"
            )
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)
        return kombu.Connection(
            transport=OrderedFilesystemTransport,
            transport_options={
                "data_folder_in": path,
                "data_folder_out": path,
                "control_folder": os.path.join(path, ".control"),
                "store_processed": False,
                "polling_interval": polling_interval,
            },
        )
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return kombu.Connection(
            url,
            ssl=_ssl_options(url, tls) if url.startswith("amqps://") else False,
            connect_timeout=CONNECT_TIMEOUT,
            heartbeat=heartbeat,
            transport_options={
                "confirm_publish": True,
                "client_properties": {"connection_name": name or f"ovirt-ipam pid {os.getpid()}"},
            },
        )
    raise ValueError(
        f"unsupported transport URL {mask_url(url)!r}: use filesystem:///path or amqp://"
    )


def _queue(name: str) -> kombu.Queue:
    contracts.validate_queue(name)
    return kombu.Queue(name, exchange=kombu.Exchange(""), routing_key=name, durable=True)


class Bus:
    """Publish, consume and call over one transport URL. Thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        polling_interval: float = 0.01,
        name: str = "",
        tls: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.safe_url = mask_url(url)
        self.name = name
        self.polling_interval = polling_interval
        self.tls = tls
        connection(url, polling_interval, tls=tls).release()  # check the URL (create the dir)
        self._pub_lock = threading.Lock()
        self._pub_conn: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._declared: set[str] = set()
        # One call at a time per reply queue (its consumer and deletion are the call's);
        # calls on different reply queues run side by side.
        self._call_locks: dict[str, threading.Lock] = {}
        self._call_locks_guard = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"Bus({self.safe_url!r}, name={self.name!r})"

    def _connect(self, role: str, heartbeat: float = 0) -> kombu.Connection:
        name = f"ovirt-ipam {self.name or 'bus'} {role} pid {os.getpid()}"
        return connection(self.url, self.polling_interval, heartbeat, name, self.tls)

    # -- publishing ------------------------------------------------------------------

    def publish(self, queue: str, env: Envelope) -> None:
        """Send env to queue (declared durable first); retries on connection errors."""
        q = _queue(queue)
        body = contracts.encode(env)
        if len(body) > contracts.MAX_MESSAGE_BYTES:
            raise ContractError(
                f"{env.type} {env.id} is too large to send: {len(body)} bytes "
                f"(at most {contracts.MAX_MESSAGE_BYTES} bytes)"
            )
        with self._pub_lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self._pub_conn is None:
                self._pub_conn = self._connect("publish")
                self._producer = None
                self._declared.clear()
            conn = self._pub_conn
            if self._producer is None:
                self._producer = conn.Producer(serializer=None)
            producer = self._producer
            declare = [] if queue in self._declared else [q]
            try:
                producer.publish(
                    body,
                    exchange="",
                    routing_key=queue,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    declare=declare,
                    retry=True,
                    retry_policy={**RETRY_POLICY, "errback": self._publish_retry},
                )
            except Exception:
                # Start afresh next time: the connection may be in any state.
                self._drop_publisher()
                raise
            self._declared.add(queue)
        LOG.debug("Published %s %s to %s", env.type, env.id, queue)

    def _publish_retry(self, exc: Exception, interval: float) -> None:
        LOG.warning(
            "Bus %s: publishing failed (%s), retrying in %.1fs", self.safe_url, exc, interval
        )

    def _drop_publisher(self) -> None:
        conn, self._pub_conn, self._producer = self._pub_conn, None, None
        self._declared.clear()
        if conn is not None:
            try:
                conn.release()
            except Exception:  # closing a broken connection
                LOG.debug("Error closing the publishing connection", exc_info=True)

    def reply(self, request: Envelope, env: Envelope) -> None:
        """Send env, as the reply to request, to the request's reply_to queue."""
        if not request.reply_to:
            raise ContractError(f"{request.type} {request.id} has no reply_to")
        env.correlation_id = request.correlation_id
        self.publish(request.reply_to, env)

    # -- consuming -------------------------------------------------------------------

    def _on_message(self, queue: str, handler: Handler, message: Any) -> None:
        try:
            try:
                env, body = contracts.decode(message.body)
            except ContractError as exc:
                LOG.warning("Dropped a malformed message on %s: %s", queue, exc)
                return
            try:
                handler(env, body)
            except Exception:
                LOG.exception(
                    "Handler of %s %s from %s on %s failed; message dropped",
                    env.type,
                    env.id,
                    env.sender,
                    queue,
                )
        finally:
            message.ack()

    def consume(
        self,
        queue: str,
        handler: Handler,
        stop: threading.Event,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """Deliver queue's messages to handler until stop is set; survives lost connections.

        ``on_reconnect`` runs each time consuming resumes after the connection was lost
        (messages sent meanwhile may be gone with a restarted broker: time to resync).
        """
        q = _queue(queue)
        backoff = 0.5
        lost = False
        while not stop.is_set():
            try:
                conn = self._connect(f"consume {queue}", heartbeat=AMQP_HEARTBEAT)
            except OSError as exc:
                lost = True
                LOG.warning(
                    "Bus %s: cannot open for %s (%s); retrying in %.1fs",
                    self.safe_url,
                    queue,
                    exc,
                    backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
                continue
            try:
                conn.connect()
                channel = conn.channel()
                q.bind(channel).declare()
                consumer = kombu.Consumer(
                    channel,
                    queues=[q],
                    on_message=lambda m: self._on_message(queue, handler, m),
                    prefetch_count=PREFETCH,
                )
                with consumer:
                    if lost:
                        LOG.info("Bus %s: consuming %s again", self.safe_url, queue)
                        if on_reconnect is not None:
                            on_reconnect()
                    else:
                        LOG.debug("Bus %s: consuming %s", self.safe_url, queue)
                    lost, backoff = False, 0.5
                    while not stop.is_set():
                        try:
                            conn.drain_events(timeout=DRAIN_TIMEOUT)
                        except TimeoutError:
                            if conn.transport.driver_type == "amqp":
                                conn.heartbeat_check()
            except (*conn.connection_errors, *conn.channel_errors, OSError) as exc:
                if stop.is_set():
                    break
                lost = True
                LOG.warning(
                    "Bus %s: consuming %s failed (%s: %s); reconnecting in %.1fs",
                    self.safe_url,
                    queue,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
            except Exception:
                # Not a transport error we know of: still never the end of the consumer.
                if stop.is_set():
                    break
                lost = True
                LOG.exception(
                    "Bus %s: consuming %s failed unexpectedly; restarting in %.1fs",
                    self.safe_url,
                    queue,
                    backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
            finally:
                try:
                    conn.release()
                except Exception:  # closing a broken connection
                    LOG.debug("Error closing the consuming connection", exc_info=True)

    # -- calls -----------------------------------------------------------------------

    def call(
        self, queue: str, env: Envelope, reply_queue: str, timeout: float
    ) -> tuple[Envelope, BaseModel]:
        """Send env to queue and wait for its reply on reply_queue; TimeoutError."""
        rq = _queue(reply_queue)
        env.reply_to = reply_queue
        env.correlation_id = contracts.new_id()
        deadline = time.monotonic() + timeout
        result: list[tuple[Envelope, BaseModel]] = []

        def on_message(message: Any) -> None:
            try:
                try:
                    renv, rbody = contracts.decode(message.body)
                except ContractError as exc:
                    LOG.warning("Dropped a malformed message on %s: %s", reply_queue, exc)
                    return
                if result or renv.correlation_id != env.correlation_id:
                    LOG.debug(
                        "Discarded %s %s on %s: correlation_id %s is not the awaited %s "
                        "(a late reply)",
                        renv.type,
                        renv.id,
                        reply_queue,
                        renv.correlation_id,
                        env.correlation_id,
                    )
                    return
                result.append((renv, rbody))
            finally:
                message.ack()

        with self._call_locks_guard:
            call_lock = self._call_locks.setdefault(reply_queue, threading.Lock())
        with call_lock, self._connect(f"call {queue}", AMQP_HEARTBEAT) as conn:
            conn.ensure_connection(
                max_retries=RETRY_POLICY["max_retries"],
                interval_start=RETRY_POLICY["interval_start"],
                interval_step=RETRY_POLICY["interval_step"],
                interval_max=RETRY_POLICY["interval_max"],
            )
            channel = conn.channel()
            rq.bind(channel).declare()
            with kombu.Consumer(channel, queues=[rq], on_message=on_message, prefetch_count=1):
                self.publish(queue, env)
                while not result:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"no reply to {env.type} {env.id} on {reply_queue} within {timeout}s"
                        )
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=min(left, DRAIN_TIMEOUT))
        return result[0]

    def delete_queue(self, queue: str, purge: bool = False) -> None:
        """Remove a queue that is no longer needed (a one-off caller's reply queue, the
        queues of a host gone for good) and the messages it still holds.

        On filesystem:// a queue is only its message files: with ``purge`` those left
        are deleted (a reply queue's are consumed already)."""
        if self.url.startswith("filesystem://"):
            if purge:
                folder = self.url[len("filesystem://") :]
                suffix = f"{_queue(queue).name}.msg"  # as _OrderedChannel names them
                for name in os.listdir(folder):
                    if name[:1] != "." and name.partition(".")[2] == suffix:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(folder, name))
            return
        with self._connect(f"delete {queue}") as conn:
            _queue(queue).bind(conn.channel()).delete()
        with self._pub_lock:
            self._declared.discard(queue)

    def close(self) -> None:
        with self._pub_lock:
            self._closed = True
            self._drop_publisher()


__all__ = ["Bus", "OrderedFilesystemTransport", "connection", "mask_url"]
