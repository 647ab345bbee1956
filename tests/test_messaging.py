"""The bus (ipam.bus.messaging) on its real transports: kombu's filesystem transport in a
temporary directory and the RabbitMQ on 127.0.0.1:5672. Queue names are unique per
test; the RabbitMQ ones are deleted afterwards."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest

from ipam.bus import contracts as C
from ipam.bus import messaging
from ipam.bus.messaging import Bus
from ipam.polling import wait_for

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


class Env:
    def __init__(self, url: str) -> None:
        self.url = url
        self.queues: list[str] = []
        self.buses: list[Bus] = []
        self.threads: list[tuple[threading.Thread, threading.Event]] = []

    def queue(self, what: str = "q") -> str:
        name = f"test-{what}-{uuid.uuid4().hex[:10]}"
        self.queues.append(name)
        return name

    def bus(self, name: str = "test") -> Bus:
        bus = Bus(self.url, name=name)
        self.buses.append(bus)
        return bus

    def consume(self, bus: Bus, queue: str, handler: Callable) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=bus.consume, args=(queue, handler, stop), daemon=True)
        thread.start()
        self.threads.append((thread, stop))
        return stop

    def close(self) -> None:
        for thread, stop in self.threads:
            stop.set()
            thread.join(5)
        for bus in self.buses:
            bus.close()
        if self.url.startswith("amqp"):
            with kombu.Connection(self.url) as conn:
                channel = conn.channel()
                for name in self.queues:
                    channel.queue_delete(name)


@pytest.fixture(params=["filesystem", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    url = f"filesystem://{tmp_path}/bus" if request.param == "filesystem" else AMQP_URL
    e = Env(url)
    yield e
    e.close()


def event(i: int) -> C.Envelope:
    return C.make("network.update", C.NetworkEvent(network_id=net_id(i), revision_number=i), "t")


def net_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1, version=4))


def test_filesystem_url_makes_a_private_directory(tmp_path: Path) -> None:
    Bus(f"filesystem://{tmp_path}/a/bus").close()
    assert (tmp_path / "a/bus").is_dir()
    assert (tmp_path / "a/bus").stat().st_mode & 0o777 == 0o700
    with pytest.raises(ValueError, match="absolute path"):
        Bus("filesystem://relative/bus")
    with pytest.raises(ValueError, match=r"unsupported transport URL 'redis://u:\*\*\*\*@h/'"):
        Bus("redis://u:secret@h/")


def test_url_passwords_are_masked() -> None:
    assert messaging.mask_url("amqp://ovirt:s3cr:et@rabbit:5672//") == (
        "amqp://ovirt:****@rabbit:5672//"
    )
    assert messaging.mask_url("amqps://u:p@h1:5671//;amqps://u:p@h2:5671//") == (
        "amqps://u:****@h1:5671//;amqps://u:****@h2:5671//"
    )
    assert messaging.mask_url("filesystem:///var/lib/ovirt-ipam/bus") == (
        "filesystem:///var/lib/ovirt-ipam/bus"
    )
    assert "guest:guest" not in repr(Bus(AMQP_URL))


def test_publish_consume_keeps_order(env: Env) -> None:
    queue = env.queue()
    bus = env.bus()
    got: list[str] = []
    env.consume(bus, queue, lambda e, b: got.append(b.network_id))
    sent = [event(i) for i in range(300)]
    for env_ in sent:
        bus.publish(queue, env_)
    wait_for(lambda: len(got) >= 300, 20, "300 messages")
    assert got == [e.body["network_id"] for e in sent]


def test_publish_from_threads_and_another_bus(env: Env) -> None:
    queue = env.queue()
    got: list[str] = []
    env.consume(env.bus("consumer"), queue, lambda e, b: got.append(b.network_id))
    publisher = env.bus("publisher")
    threads = [
        threading.Thread(
            target=lambda k=k: [publisher.publish(queue, event(k * 100 + i)) for i in range(50)]
        )
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: len(got) >= 200, 20, "200 messages")
    assert sorted(got) == sorted(net_id(k * 100 + i) for k in range(4) for i in range(50))
    for k in range(4):  # each thread's messages in the order it sent them
        mine = [g for g in got if g in {net_id(k * 100 + i) for i in range(50)}]
        assert mine == [net_id(k * 100 + i) for i in range(50)]


def test_malformed_message_is_dropped_and_consumer_goes_on(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ipam.bus.messaging")
    queue = env.queue()
    bus = env.bus()
    got: list[int] = []
    env.consume(bus, queue, lambda e, b: got.append(b.revision_number))
    bus.publish(queue, event(1))
    bad_version = dict(event(2).model_dump(mode="json"), v=7)
    # Published directly with kombu, past the Bus's checks.
    with messaging.connection(env.url) as conn:
        producer = conn.Producer(serializer=None)
        q = kombu.Queue(queue, exchange=kombu.Exchange(""), routing_key=queue, durable=True)
        for raw, ctype in [
            (b"this is not JSON", "text/plain"),
            (json.dumps(bad_version).encode(), "application/json"),
            (b'{"v": 1, "type": "port.update", "body": {}}', "application/json"),
        ]:
            producer.publish(
                raw,
                exchange="",
                routing_key=queue,
                content_type=ctype,
                declare=[q],
                content_encoding="utf-8",
            )
    bus.publish(queue, event(3))
    wait_for(lambda: got == [1, 3], 10, "the good messages around the bad ones")
    drops = [r.getMessage() for r in caplog.records if "Dropped a malformed message" in r.message]
    assert len(drops) == 3, drops
    assert "message is not valid JSON" in drops[0]
    assert "unsupported message version 7" in drops[1]
    assert "invalid envelope" in drops[2]
    bus.publish(queue, event(4))
    wait_for(lambda: got == [1, 3, 4], 10, "a message after the bad ones")


def test_unreadable_message_file_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ipam.bus.messaging")
    env = Env(f"filesystem://{tmp_path}/bus")
    try:
        queue = env.queue()
        bus = env.bus()
        got: list[int] = []
        (tmp_path / "bus" / f"00000000000000000001_garbage.{queue}.msg").write_bytes(b"\x00{{")
        bus.publish(queue, event(1))
        env.consume(bus, queue, lambda e, b: got.append(b.revision_number))
        wait_for(lambda: got == [1], 10, "the good message after a garbage file")
        assert any("Dropped unreadable message file" in r.message for r in caplog.records)
        assert not [p for p in (tmp_path / "bus").iterdir() if p.name.endswith(".msg")]
    finally:
        env.close()


def test_handler_exception_is_logged_and_consumer_goes_on(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ipam.bus.messaging")
    queue = env.queue()
    bus = env.bus()
    got: list[int] = []

    def handler(e: C.Envelope, b: C.NetworkEvent) -> None:
        if b.revision_number == 2:
            raise RuntimeError("handler blew up")
        got.append(b.revision_number)

    env.consume(bus, queue, handler)
    for i in (1, 2, 3):
        bus.publish(queue, event(i))
    wait_for(lambda: got == [1, 3], 10, "messages around the failing one")
    failed = [r for r in caplog.records if "failed; message dropped" in r.message]
    assert len(failed) == 1
    assert failed[0].exc_info and "handler blew up" in str(failed[0].exc_info[1])


def responder(bus: Bus, handled: list[str]) -> Callable:
    def handle(e: C.Envelope, b: C.SyncRequest) -> None:
        handled.append(e.id)
        reply = C.SyncReply(networks=[], missing=b.networks)
        bus.reply(e, C.make("sync.reply", reply, "responder"))

    return handle


def sync(i: int) -> C.Envelope:
    return C.make("sync.request", C.SyncRequest(host="h1", networks=[net_id(i)]), "h1")


def test_call_and_reply(env: Env) -> None:
    queue, rq = env.queue("engine"), env.queue("reply")
    server, client = env.bus("server"), env.bus("client")
    handled: list[str] = []
    env.consume(server, queue, responder(server, handled))
    for i in range(3):
        request = sync(i)
        renv, rbody = client.call(queue, request, rq, timeout=10)
        assert renv.type == "sync.reply"
        assert renv.correlation_id == request.correlation_id
        assert request.reply_to == rq
        assert rbody.missing == [net_id(i)]
    assert len(handled) == 3


def test_call_times_out_then_late_reply_is_discarded(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipam.bus.messaging")
    queue, rq = env.queue("engine"), env.queue("reply")
    server, client = env.bus("server"), env.bus("client")
    first = sync(1)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no reply to sync\.request"):
        client.call(queue, first, rq, timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 2.5
    # Now the server comes up and answers the first request: too late.
    handled: list[str] = []
    env.consume(server, queue, responder(server, handled))
    wait_for(lambda: handled == [first.id], 10, "the late reply")
    second = sync(2)
    renv, rbody = client.call(queue, second, rq, timeout=10)
    assert renv.correlation_id == second.correlation_id
    assert rbody.missing == [net_id(2)]
    discarded = [r.getMessage() for r in caplog.records if r.message.startswith("Discarded")]
    assert len(discarded) == 1 and first.correlation_id in discarded[0]


def test_consume_stops_within_a_second(env: Env) -> None:
    queue = env.queue()
    bus = env.bus()
    got: list[int] = []
    stop = env.consume(bus, queue, lambda e, b: got.append(b.revision_number))
    bus.publish(queue, event(1))
    wait_for(lambda: got == [1], 10, "the consumer running")
    thread = env.threads[-1][0]
    start = time.monotonic()
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0


def test_consumer_reconnects_on_filesystem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ipam.bus.messaging")
    env = Env(f"filesystem://{tmp_path}/bus")
    try:
        queue = env.queue()
        bus = env.bus()
        got: list[int] = []
        env.consume(bus, queue, lambda e, b: got.append(b.revision_number))
        bus.publish(queue, event(1))
        wait_for(lambda: got == [1], 10, "the consumer running")
        shutil.rmtree(tmp_path / "bus")
        wait_for(lambda: any("failed" in r.message for r in caplog.records), 10, "a failure")
        wait_for(lambda: any("again" in r.message for r in caplog.records), 10, "a reconnection")
        bus.publish(queue, event(2))
        wait_for(lambda: got == [1, 2], 10, "a message after the reconnection")
    finally:
        env.close()


def _rabbit_connections(name: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [line.split("\t")[0] for line in out.splitlines() if name in line]


@pytest.mark.rabbitmq
@pytest.mark.root  # rabbitmqctl
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
def test_consumer_and_publisher_reconnect_on_rabbitmq(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ipam.bus.messaging")
    env = Env(AMQP_URL)
    try:
        queue = env.queue()
        name = f"reconnect-{uuid.uuid4().hex[:8]}"
        bus = env.bus(name)
        got: list[int] = []
        env.consume(bus, queue, lambda e, b: got.append(b.revision_number))
        bus.publish(queue, event(1))
        wait_for(lambda: got == [1], 10, "the consumer running")
        pids = _rabbit_connections(name)
        assert len(pids) == 2  # the publisher's and the consumer's
        for pid in pids:
            subprocess.run(
                ["rabbitmqctl", "-q", "close_connection", pid, "test"], timeout=60, check=True
            )
        wait_for(lambda: any("again" in r.message for r in caplog.records), 20, "reconnection")
        bus.publish(queue, event(2))
        wait_for(lambda: got == [1, 2], 10, "a message after the reconnection")
    finally:
        env.close()


def _idle_listings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watch: bool) -> int:
    """Directory listings of one idle filesystem consumer over 1 s, and a message sent
    afterwards is still delivered (by the inotify wake-up, or by polling without it)."""
    if not watch:

        def no_inotify(*_args: object) -> None:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(messaging, "INotify", no_inotify)
    listed = 0
    real_listdir = messaging.os.listdir

    def counting_listdir(path: str) -> list[str]:
        nonlocal listed
        listed += 1
        return real_listdir(path)

    monkeypatch.setattr(messaging.os, "listdir", counting_listdir)
    env = Env(f"filesystem://{tmp_path}/bus-{watch}")
    try:
        got: list[int] = []
        queue = env.queue()
        env.consume(env.bus("consumer"), queue, lambda e, b: got.append(b.revision_number))
        wait_for(lambda: listed > 0, 5, "the consumer looked once")
        before = listed
        time.sleep(1.0)  # the measured window itself, not a wait for a condition
        idle = listed - before
        env.bus("producer").publish(queue, event(7))
        wait_for(lambda: len(got) == 1, 5, "the message delivered")
        assert got == [7]
        return idle
    finally:
        env.close()


def test_an_idle_filesystem_consumer_waits_for_inotify_instead_of_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken by the message's arrival: an idle consumer looks at the directory once a
    second (RESCAN_S, a safety net), not every polling_interval (2 ms) nor at each of
    its drain timeouts (issue 18: what an idle lab burns)."""
    assert _idle_listings(tmp_path, monkeypatch, watch=True) <= 2


def test_without_inotify_the_filesystem_consumer_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No inotify instance to be had (the per-user limit): kombu's polling, every
    polling_interval (2 ms by default; 10 ms here, the Bus default)."""
    messaging._FolderWatch._watches.clear()
    assert _idle_listings(tmp_path, monkeypatch, watch=False) >= 30


def test_a_filesystem_consumer_watches_its_own_queue_only(tmp_path: Path) -> None:
    """One directory per queue, watched by the processes that consume it: the messages
    of other queues (every host's heartbeats to the engine) wake nothing here, a claim
    is no event (a rename out of the queue's directory), and files an older version
    left in the top directory are delivered (issue 18)."""
    folder = tmp_path / "bus"
    env = Env(f"filesystem://{folder}")
    try:
        mine, other = env.queue("mine"), env.queue("other")
        bus = env.bus()
        folder.mkdir(exist_ok=True)
        old = folder / f"{0:020d}_{uuid.uuid4().hex}.{mine}.msg"  # the former layout
        old.write_text(json.dumps(_kombu_message(bus, mine, event(0))))
        got: list[int] = []
        stop = env.consume(bus, mine, lambda e, b: got.append(b.revision_number))
        for i in range(1, 11):
            bus.publish(other, event(i))
        bus.publish(mine, event(11))
        wait_for(lambda: got == [0, 11], 10, "the old file and the new message")
        watch = messaging._FolderWatch.of(str(folder))
        assert watch is not None
        assert watch.watched == {mine}
        # Arrivals in its directory only (the old file's move, the new message: one or
        # two reads of events), none for the other queue's ten, none for the claims
        # (renames out of it).
        wait_for(lambda: mine in watch.counts, 5, "the watch's events")
        assert set(watch.counts) == {mine} and watch.counts[mine] <= 2
        assert sorted(p.name for p in folder.iterdir()) == sorted([".claimed", mine, other])
        assert len(list((folder / other).iterdir())) == 10 and not old.exists()
        started = time.monotonic()
        stop.set()  # an idle consumer waits for inotify, and its stop wakes it at once
        env.threads[-1][0].join(5)
        assert time.monotonic() - started < 0.5
    finally:
        env.close()


def _kombu_message(bus: Bus, queue: str, env: C.Envelope) -> Any:
    """What kombu's filesystem channel writes for env: the publisher's own message file,
    read back (the old layout held the same JSON)."""
    bus.publish(queue, env)
    qdir = Path(bus.url[len("filesystem://") :]) / queue
    [path] = [p for p in qdir.iterdir() if p.name.endswith(".msg")]
    message = json.loads(path.read_text())
    path.unlink()
    return message
