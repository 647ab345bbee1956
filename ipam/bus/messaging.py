"""The message bus (kombu), used by the engine and the agents alike.

Every message goes through the AMQP *default* exchange with ``routing_key`` equal
to the queue name, so it behaves the same on every transport: kombu's virtual
transports (filesystem) keep exchange bindings per process, the default exchange
needs none. Queues are durable and named by ipam.bus.contracts.

``filesystem://<absolute path>`` is kombu's filesystem transport with its
messages under that directory (created 0700), one subdirectory per queue (named
as the queue). Its file names are ordered by a monotonic nanosecond stamp
(kombu's own are ordered by the millisecond only, and messages of one millisecond
come out in random order), written under a dot name and renamed into place
(kombu's reader could see a half-written file), and claimed by rename into
``.claimed/`` (so two consumers of a queue never both get one message).
Consumers sleep until inotify reports a message in their queue's directory: one
event per message (its rename into place), in the processes that consume that
queue only, so an idle bus costs next to nothing (issue 18: before, every process
woke for every heartbeat to the engine). Message files an older version left in
the top directory are moved into their queue's directory by its first consumer.
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

DRAIN_TIMEOUT = 0.2  # consume() notices stop within about this (where stop cannot wake it)
#: A filesystem consumer woken by inotify and by its stop: nothing to look at until then.
IDLE_DRAIN_TIMEOUT = 60.0
PREFETCH = 64
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.4, "interval_max": 1}
RECONNECT_MAX = 10.0
CONNECT_TIMEOUT = 5.0
AMQP_HEARTBEAT = 30

#: Where consumers move the message files they claim (see _OrderedChannel._claim).
CLAIM_DIR = ".claimed"

_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@;]*@")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ****, fit for a log line."""
    return _PASSWORD.sub(r"\1****@", url)


# -- the filesystem transport, ordered and atomic --------------------------------------


def _queue_dir(folder: str, queue: str) -> str:
    """A queue's directory under the bus directory (queue names are checked by
    ipam.bus.contracts.validate_queue: no path separator, no leading dot)."""
    return os.path.join(folder, queue)


def _make_dir(path: str) -> None:
    """Make a directory in the bus directory: not the bus directory itself, whose loss
    is a lost connection (the consumer reconnects, and connection() makes it again)."""
    try:
        os.mkdir(path, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ChannelError(f"cannot make {path}: {exc}") from exc


class _OrderedChannel(filesystem.Channel):
    _seq = itertools.count()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[str, deque[str]] = {}
        self._adopted: set[str] = set()  # queues whose top-level files were moved in

    def _claim(self, qdir: str, name: str) -> str | None:
        """Take message file ``name`` by renaming it into ``.claimed/`` (out of the
        watched queue directory): its new path, or None if another consumer took it
        first."""
        claim_dir = os.path.join(self.data_folder_in, CLAIM_DIR)
        claimed = os.path.join(claim_dir, uuid.uuid4().hex)
        for _ in range(2):
            try:
                os.rename(os.path.join(qdir, name), claimed)
                return claimed
            except FileNotFoundError:
                if os.path.isdir(claim_dir):
                    return None  # another consumer took it
                _make_dir(claim_dir)  # the first claim on this bus (or it was removed)
            except OSError as exc:
                raise ChannelError(f"cannot claim {name}: {exc}") from exc
        return None

    def _adopt_top_level(self, queue: str, qdir: str) -> None:
        """Move the queue's message files that an older version wrote into the top
        directory into the queue's own (once per channel and queue)."""
        if queue in self._adopted:
            return
        folder, suffix = self.data_folder_in, f"{queue}.msg"
        try:
            names = os.listdir(folder)
        except OSError as exc:
            raise ChannelError(f"cannot list {folder}: {exc}") from exc
        for name in names:
            if name[:1] != "." and name.partition(".")[2] == suffix:
                with contextlib.suppress(FileNotFoundError):  # another consumer's now
                    os.rename(os.path.join(folder, name), os.path.join(qdir, name))
        self._adopted.add(queue)

    def _list(self, queue: str) -> tuple[str, list[str]]:
        """The queue's directory and its message files, oldest first."""
        qdir = _queue_dir(self.data_folder_in, queue)
        try:
            names = os.listdir(qdir)
        except OSError as exc:  # deleted under its consumer: it reconnects and declares
            raise ChannelError(f"cannot list {qdir}: {exc}") from exc
        return qdir, sorted(n for n in names if n[:1] != "." and n.endswith(".msg"))

    # kombu's filesystem.Channel names _put's second parameter payload, its base
    # AbstractChannel message: no signature matches both.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        ns = time.monotonic_ns()
        name = f"{ns:020d}_{next(self._seq) % 1_000_000:06d}{uuid.uuid4().hex}.{queue}.msg"
        qdir = _queue_dir(self.data_folder_out, queue)
        tmp = os.path.join(qdir, "." + name)
        data = json.dumps(payload).encode()
        try:
            if not os.path.isdir(qdir):  # the queue's first message
                _make_dir(qdir)
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(qdir, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ChannelError(f"cannot add message file {name!r} to {qdir}: {exc}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        pending = self._pending.get(queue)
        qdir = _queue_dir(self.data_folder_in, queue)
        if not pending:
            self._adopt_top_level(queue, qdir)
            qdir, names = self._list(queue)
            pending = self._pending[queue] = deque(names)
        while pending:
            name = pending.popleft()
            claimed = self._claim(qdir, name)
            if claimed is None:
                continue
            try:
                with open(claimed, "rb") as f:
                    raw = f.read()
            finally:
                os.unlink(claimed)
            try:
                return json.loads(raw)
            except ValueError as exc:
                LOG.warning("Dropped unreadable message file %s in %s: %s", name, qdir, exc)
        raise Empty()

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        """Declaring a queue makes its directory (consumers, calls and publishers
        declare before they use it)."""
        _make_dir(_queue_dir(self.data_folder_in, queue))

    def _size(self, queue: str) -> int:
        return len(self._list(queue)[1])

    def _purge(self, queue: str) -> int:
        qdir, names = self._list(queue)
        count = 0
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # a consumer took it
                os.unlink(os.path.join(qdir, name))
                count += 1
        return count


class _FolderWatch:
    """Wakes the consumers of a bus directory when a message file arrives in the
    directory of one of their queues (its rename into place), so that an idle
    consumer sleeps instead of listing the directory every polling_interval. Only
    the queues consumed in this process are watched: the messages of other queues
    (every process's heartbeats to the engine) wake nothing here. One inotify
    instance and one thread per bus directory and process; consumers wait on
    counters of arrivals.

    Only renames into a queue's directory are watched: a message is written under a
    dot name and renamed into place, and claimed by a rename out of it, so each
    message is one event (issue 18)."""

    # A consumer looks anyway this often: a safety net (every arrival is an event;
    # a lost one is an overflow, and every consumer looks), so rarely (issue 18).
    RESCAN_S = 5.0
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
        self.folder = folder
        self.inotify = INotify()
        self.counts: dict[str, int] = {}  # queue -> message files arrived for it
        self.overflows = 0  # events lost: every consumer must look
        self.waiting: dict[str, int] = {}  # queue -> consumers waiting for it now
        self.queue_of: dict[int, str] = {}  # inotify watch descriptor -> queue
        self.watched: set[str] = set()
        self.cond = threading.Condition()
        threading.Thread(target=self._run, name=f"bus-watch {folder}", daemon=True).start()

    def watch(self, queues: Iterable[str]) -> bool:
        """Watch the directories of these queues (made if missing); False if one cannot
        be watched (its consumer then looks every RESCAN_S)."""
        ok = True
        with self.cond:
            for queue in queues:
                if queue in self.watched:
                    continue
                qdir = _queue_dir(self.folder, queue)
                try:
                    wd = self.inotify.add_watch(qdir, inotify_flags.MOVED_TO)
                except FileNotFoundError:  # deleted: its listing fails, and it reconnects
                    ok = False
                    continue
                except OSError as exc:
                    LOG.warning(
                        "No inotify watch on %s (%s): looking every %.1fs", qdir, exc, self.RESCAN_S
                    )
                    ok = False
                    continue
                self.queue_of[wd] = queue
                self.watched.add(queue)
        return ok

    def _run(self) -> None:
        while True:
            try:
                events = self.inotify.read()
            except OSError:
                LOG.exception("Reading the bus directory's inotify events failed")
                events = []
                time.sleep(self.RESCAN_S)
            with self.cond:
                arrived = set()
                for e in events:
                    queue = self.queue_of.get(e.wd)
                    if e.mask & inotify_flags.IGNORED and queue is not None:
                        # Its directory was removed (the queue deleted): watched again,
                        # made again, at its consumer's next look.
                        del self.queue_of[e.wd]
                        self.watched.discard(queue)
                        arrived.add(queue)
                    elif queue is not None and e.name and e.name[:1] != ".":
                        arrived.add(queue)
                overflow = any(e.mask & inotify_flags.Q_OVERFLOW for e in events)
                if not arrived and not overflow:
                    continue
                for queue in arrived:
                    self.counts[queue] = self.counts.get(queue, 0) + 1
                self.overflows += overflow
                if overflow or any(q in self.waiting for q in arrived):
                    self.cond.notify_all()

    def arrivals(self, queues: Iterable[str]) -> int:
        """A count that grows whenever a message for one of the queues arrives."""
        with self.cond:
            return self.overflows + sum(self.counts.get(q, 0) for q in queues)

    def poke(self) -> None:
        """Wake every waiting consumer, to look at its stop (see Bus.consume)."""
        with self.cond:
            self.cond.notify_all()

    def wait(
        self,
        queues: list[str],
        seen: int,
        timeout: float,
        stop: threading.Event | None = None,
    ) -> bool:
        """Until a message for one of the queues arrived after ``seen`` was read
        (True), or timeout, or stop is set (False: a stop pokes the watch)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            for q in queues:
                self.waiting[q] = self.waiting.get(q, 0) + 1
            try:
                while True:
                    if self.overflows + sum(self.counts.get(q, 0) for q in queues) != seen:
                        return True
                    if stop is not None and stop.is_set():
                        return False
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self.cond.wait(left)
            finally:
                for q in queues:
                    if self.waiting[q] <= 1:
                        del self.waiting[q]
                    else:
                        self.waiting[q] -= 1


class OrderedFilesystemTransport(filesystem.Transport):
    """kombu's filesystem transport with ordered, atomically written message files, and
    consumers woken by inotify when a message arrives instead of polling the directory
    (kombu's own sleeps polling_interval between empty polls: 3-6 % of a core per
    idle process at 2 ms). Without inotify it polls as kombu's does.

    A consumer that found its queues empty does not list the directory again until a
    message for them arrived, or RESCAN_S passed; and one given its stop event
    (``stop_on``) returns from drain_events when it is set, so it need not wake every
    DRAIN_TIMEOUT to look at it."""

    Channel = _OrderedChannel
    driver_name = "ovirt-ipam-filesystem"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (queues, their arrivals count, monotonic time) of the last listing that
        #: found nothing for them.
        self._empty: tuple[tuple[str, ...], int, float] | None = None
        self._stop: threading.Event | None = None

    def stop_on(self, stop: threading.Event) -> bool:
        """Return from drain_events (TimeoutError) once stop is set: True if its
        setting wakes a waiting drain_events (inotify; see Bus.consume), False if
        drain_events only sees it at its timeout (polling)."""
        self._stop = stop
        folder = self.client.transport_options.get("data_folder_in") if self.client else None
        return isinstance(folder, str) and _FolderWatch.of(folder) is not None

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        client, cycle = self.client, self.cycle
        folder = client.transport_options.get("data_folder_in") if client else None
        watch = _FolderWatch.of(folder) if folder else None
        if watch is None or cycle is None:
            super().drain_events(connection, timeout=timeout)
            return
        start = time.monotonic()
        queues = [q for channel in self.channels for q in channel._active_queues]
        key = tuple(queues)
        stop = self._stop
        while True:
            if stop is not None and stop.is_set():
                raise TimeoutError()
            watched = watch.watch(queues)  # before looking: no arrival is missed
            seen = watch.arrivals(queues)
            now = time.monotonic()
            empty = self._empty
            listed_at = now
            if (
                watched
                and empty is not None
                and empty[:2] == (key, seen)
                and now - empty[2] < watch.RESCAN_S
            ):
                listed_at = empty[2]  # nothing arrived since that listing: no need to look
            else:
                try:
                    cycle.get(self._deliver, timeout=timeout)
                    self._empty = None
                    return
                except Empty:
                    self._empty = (key, seen, now)
            left = None if timeout is None else timeout - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise TimeoutError()
            rescan = max(0.0, watch.RESCAN_S - (time.monotonic() - listed_at))
            wait = rescan if left is None else min(left, rescan)
            if not watch.wait(queues, seen, wait, stop) and left is not None and left <= wait:
                raise TimeoutError()  # nothing arrived: no need to look again


def _poke_on_stop(folder: str, stop: threading.Event) -> None:
    """Blocks until stop is set (no timeout: no wake-ups while the consumer runs), then
    wakes the consumers waiting on folder's watch, so that an idle filesystem consumer
    ends at once instead of looking at its stop every DRAIN_TIMEOUT (issue 18)."""
    stop.wait()
    with _FolderWatch._lock:
        watch = _FolderWatch._watches.get((os.getpid(), folder))
    if watch is not None:
        watch.poke()


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
        if self.url.startswith("filesystem://"):
            folder = self.url[len("filesystem://") :]
            threading.Thread(
                target=_poke_on_stop, args=(folder, stop), name=f"stop {queue}", daemon=True
            ).start()
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
                    transport = conn.transport
                    woken = isinstance(transport, OrderedFilesystemTransport) and (
                        transport.stop_on(stop)
                    )
                    drain_timeout = IDLE_DRAIN_TIMEOUT if woken else DRAIN_TIMEOUT
                    while not stop.is_set():
                        try:
                            conn.drain_events(timeout=drain_timeout)
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
                name = _queue(queue).name
                qdir = _queue_dir(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    for entry in os.listdir(qdir):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(qdir, entry))
                with contextlib.suppress(OSError):  # not empty: a message came meanwhile
                    os.rmdir(qdir)
                suffix = f"{name}.msg"  # an older version's, in the top directory
                for entry in os.listdir(folder):
                    if entry[:1] != "." and entry.partition(".")[2] == suffix:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(folder, entry))
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
