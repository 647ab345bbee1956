"""Simulated hosts for bench.scale: one process simulates hundreds of hosts, each a
host service and a DHCP agent speaking the real contracts (ipam.bus.contracts) on
the real bus (ipam.bus.messaging.connection: RabbitMQ or the ordered filesystem
transport), without namespaces, dnsmasq or a mapping file.

Per host, as the real processes do:
- host service (vdsm_verb.host_service): ``host.heartbeat`` (its bridges) every
  heartbeat interval; answers ``Host.setDHCP`` on ``host_queue(host)`` with a
  ``jsonrpc.reply`` to the caller's reply queue (result True, or the verb's error);
- DHCP agent (dhcp_driver.agent), running while its list is not empty:
  ``sync.request`` for the networks it newly serves (reply on ``reply_queue(host)``,
  one call at a time), ``port.ack`` for every port of a synced network (dnsmasq
  would have loaded them all) and for every ``port.update`` of a served network,
  ``network.release`` for a network taken away, ``agent.heartbeat`` with its
  networks (``running`` once synced, ``starting`` before) every interval and at
  once after a change, a resync on ``network.update``/``subnet.*``/``engine.started``.

Why not one thread per host: 1,000 hosts would be 3,000 consumer connections and
threads. Here each worker process has one consuming connection (one consumer per
host queue on one channel) and one publishing connection (publisher confirms wait
on it, so they never re-enter the consumer's callbacks), and a single-threaded loop
that drains the consumer with a timeout until the next heartbeat is due. The parent
drives it through a pipe: ``("kill", hosts)`` (the hosts fall silent at once: no more
heartbeats, their consumers cancelled, like a host that lost power), ``("stats",)``,
``("stop",)``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import kombu
from pydantic import BaseModel

from ipam.bus import contracts
from ipam.bus.contracts import ContractError, Envelope
from ipam.bus.messaging import connection

LOG = logging.getLogger("bench.scale.sim")
SYNC_TIMEOUT = 30.0  # [dhcp_agent] sync_timeout's default
PREFETCH = 64


@dataclass
class SimHost:
    name: str
    bridges: list[str]
    started_at: float = field(default_factory=time.time)
    alive: bool = True
    wanted: dict[str, str] = field(default_factory=dict)  # network id -> VDSM name
    serving: dict[str, int] = field(default_factory=dict)  # network id -> ports
    starting: set[str] = field(default_factory=set)  # asked in a sync, not answered
    sync_id: str | None = None  # correlation id of the sync in flight
    sync_sent: float = 0.0
    sync_asked: list[str] = field(default_factory=list)
    sync_later: set[str] = field(default_factory=set)  # to ask once the reply is in
    next_beat: float = 0.0
    consumers: list[kombu.Consumer] = field(default_factory=list)
    host_beat: contracts.HostHeartbeat | None = None
    agent_beat: contracts.Heartbeat | None = None  # None: rebuild at the next beat

    @property
    def agent_running(self) -> bool:
        return bool(self.wanted)


class Simulator:
    """The hosts of one worker process and its two bus connections."""

    def __init__(self, url: str, hosts: list[tuple[str, list[str]]], interval: float) -> None:
        self.url, self.interval = url, interval
        self.hosts = {name: SimHost(name, bridges) for name, bridges in hosts}
        for h in self.hosts.values():
            h.host_beat = contracts.HostHeartbeat(
                host=h.name, started_at=h.started_at, bridges=h.bridges
            )
        self.sub = connection(url)
        self.pub = connection(url)
        self.producer = self.pub.Producer(serializer=None)
        self.channel = self.sub.channel()
        self.channel.basic_qos(0, PREFETCH, False)
        self.timers: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "host_heartbeats",
                "agent_heartbeats",
                "to_engine",
                "rpc",
                "syncs",
                "sync_replies",
                "sync_timeouts",
                "acks",
                "acked_ports",
                "port_updates",
                "releases",
                "dropped",
            ),
            0,
        )

    # -- bus ---------------------------------------------------------------------------

    def start(self) -> None:
        """Declare the engine's queue (a message to a queue nobody declared is lost on
        RabbitMQ) and consume every host's queues; heartbeats start spread over one
        interval, as hosts that booted at different times."""
        engine_q = _queue(contracts.ENGINE_QUEUE)
        engine_q.bind(self.channel).declare()
        now = time.monotonic()
        for h in self.hosts.values():
            for queue, handler in (
                (contracts.host_queue(h.name), self._on_rpc),
                (contracts.agent_queue(h.name), self._on_event),
                (contracts.reply_queue(h.name), self._on_reply),
            ):
                consumer = kombu.Consumer(
                    self.channel,
                    queues=[_queue(queue)],
                    on_message=_bind(handler, h),
                    prefetch_count=None,
                )
                consumer.consume()
                h.consumers.append(consumer)
            self._schedule(h, now + random.uniform(0, self.interval))

    def publish(self, queue: str, env: Envelope) -> None:
        self.producer.publish(
            contracts.encode(env),
            exchange="",
            routing_key=queue,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )
        if queue == contracts.ENGINE_QUEUE:
            self.stats["to_engine"] += 1

    def send(self, h: SimHost, type_: str, body: BaseModel, **kw: Any) -> Envelope:
        env = contracts.make(type_, body, h.name, **kw)
        self.publish(contracts.ENGINE_QUEUE, env)
        return env

    # -- timers --------------------------------------------------------------------------

    def _schedule(self, h: SimHost, due: float) -> None:
        h.next_beat = due
        heapq.heappush(self.timers, (due, next(self._seq), h.name))

    def beat_now(self, h: SimHost) -> None:
        self._schedule(h, time.monotonic())

    def run_timers(self) -> float:
        """Send the heartbeats that are due; returns seconds until the next one."""
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            due, _, name = heapq.heappop(self.timers)
            h = self.hosts[name]
            if not h.alive or due != h.next_beat:
                continue  # a stale entry (rescheduled by beat_now)
            self._beat(h)
            self._schedule(h, now + self.interval)
            if h.sync_id is not None and now - h.sync_sent > SYNC_TIMEOUT:
                self.stats["sync_timeouts"] += 1
                h.sync_later.update(h.sync_asked)
                h.sync_id = None
                self._sync_next(h)
        return self.timers[0][0] - now if self.timers else 1.0

    def _beat(self, h: SimHost) -> None:
        assert h.host_beat is not None
        self.send(h, "host.heartbeat", h.host_beat)
        self.stats["host_heartbeats"] += 1
        if not h.agent_running:
            return
        if h.agent_beat is None:
            nets = [
                contracts.ServedNetworkReport(id=k, ports=n, dnsmasq="running")
                for k, n in h.serving.items()
            ]
            nets += [
                contracts.ServedNetworkReport(id=k, ports=0, dnsmasq="starting")
                for k in h.starting
                if k not in h.serving
            ]
            h.agent_beat = contracts.Heartbeat(host=h.name, started_at=h.started_at, networks=nets)
        self.send(h, "agent.heartbeat", h.agent_beat)
        self.stats["agent_heartbeats"] += 1

    # -- the host service: Host.setDHCP --------------------------------------------------

    def _on_rpc(self, h: SimHost, env: Envelope, body: BaseModel) -> None:
        if not isinstance(body, contracts.JsonRpcRequest) or not env.reply_to:
            return
        self.stats["rpc"] += 1
        result: dict[str, Any] = {"jsonrpc": "2.0", "id": body.id}
        params = body.params or {}
        if body.method != "Host.setDHCP":
            result["error"] = {"code": -32601, "message": f"Method not found: {body.method}"}
        elif not _valid_list(params.get("networks")):
            result["error"] = {"code": -32602, "message": "Invalid params for Host.setDHCP"}
        else:
            result["result"] = True
        reply = contracts.make("jsonrpc.reply", contracts.JsonRpcResponse(**result), h.name)
        reply.correlation_id = env.correlation_id
        self.publish(env.reply_to, reply)
        if "result" in result:
            self._set_dhcp(h, {e["id"]: e["name"] for e in params["networks"]})

    def _set_dhcp(self, h: SimHost, wanted: dict[str, str]) -> None:
        """The mapping changed: the agent reconciles (dhcp_driver.agent.Agent.reconcile)."""
        bridges = set(h.bridges)
        wanted = {k: v for k, v in wanted.items() if v in bridges}  # the driver's check
        gone = [k for k in (*h.serving, *h.starting) if k not in wanted]
        for net_id in dict.fromkeys(gone):
            h.serving.pop(net_id, None)
            h.starting.discard(net_id)
            h.sync_later.discard(net_id)
            self.send(
                h, "network.release", contracts.NetworkRelease(host=h.name, network_id=net_id)
            )
            self.stats["releases"] += 1
        h.wanted = wanted
        new = [k for k in wanted if k not in h.serving and k not in h.starting]
        h.starting.update(new)
        h.sync_later.update(new)
        self._sync_next(h)
        h.agent_beat = None
        self.beat_now(h)

    # -- the agent: sync, acks ------------------------------------------------------------

    def _sync_next(self, h: SimHost) -> None:
        """One sync call at a time per host (its one reply queue), as the agent does."""
        if h.sync_id is not None or not h.sync_later:
            return
        asked = sorted(h.sync_later)
        h.sync_later.clear()
        env = contracts.make(
            "sync.request",
            contracts.SyncRequest(host=h.name, networks=asked),
            h.name,
            reply_to=contracts.reply_queue(h.name),
            correlation_id=contracts.new_id(),
        )
        h.sync_id, h.sync_sent, h.sync_asked = env.correlation_id, time.monotonic(), asked
        self.publish(contracts.ENGINE_QUEUE, env)
        self.stats["syncs"] += 1

    def _on_reply(self, h: SimHost, env: Envelope, body: BaseModel) -> None:
        if not isinstance(body, contracts.SyncReply) or env.correlation_id != h.sync_id:
            return  # a late reply to a call given up
        self.stats["sync_replies"] += 1
        h.sync_id = None
        for state in body.networks:
            net_id = state.network.id
            if net_id not in h.wanted:
                continue
            h.starting.discard(net_id)
            h.serving[net_id] = len(state.ports)
            self._ack(h, net_id, state.ports)
        for net_id in body.missing:
            h.starting.discard(net_id)
        h.agent_beat = None
        self.beat_now(h)  # the engine counts this host as serving from its next beat
        self._sync_next(h)

    def _ack(self, h: SimHost, net_id: str, ports: list[contracts.PortState]) -> None:
        if not ports:
            return
        acked = [contracts.AckedPort(id=p.id, revision_number=p.revision_number) for p in ports]
        self.send(h, "port.ack", contracts.PortAck(host=h.name, network_id=net_id, ports=acked))
        self.stats["acks"] += 1
        self.stats["acked_ports"] += len(acked)

    def _on_event(self, h: SimHost, env: Envelope, body: BaseModel) -> None:
        if isinstance(body, contracts.PortEvent):
            self.stats["port_updates"] += 1
            if env.type == "port.update" and body.port.network_id in h.serving:
                self._ack(h, body.port.network_id, [body.port])
        elif isinstance(body, contracts.NetworkEvent | contracts.SubnetEvent):
            if body.network_id in h.serving:
                h.sync_later.add(body.network_id)
                self._sync_next(h)
        elif isinstance(body, contracts.EngineStarted):
            h.sync_later.update(h.serving)
            self._sync_next(h)

    # -- commands ---------------------------------------------------------------------------

    def kill(self, names: list[str]) -> int:
        killed = 0
        for name in names:
            h = self.hosts.get(name)
            if h is None or not h.alive:
                continue
            h.alive = False
            for consumer in h.consumers:
                consumer.cancel()
            killed += 1
        return killed

    def snapshot(self) -> dict[str, Any]:
        return dict(
            self.stats, hosts=len(self.hosts), alive=sum(h.alive for h in self.hosts.values())
        )

    def close(self) -> None:
        for conn in (self.sub, self.pub):
            try:
                conn.release()
            except Exception:  # closing a broken connection
                LOG.debug("closing a connection failed", exc_info=True)


def _queue(name: str) -> kombu.Queue:
    """As ipam.bus.messaging declares them: durable, on the default exchange."""
    return kombu.Queue(name, exchange=kombu.Exchange(""), routing_key=name, durable=True)


def _valid_list(networks: object) -> bool:
    return isinstance(networks, list) and all(
        isinstance(e, dict)
        and set(e) == {"name", "id"}
        and contracts.is_vdsm_name(e["name"])
        and isinstance(e["id"], str)
        for e in networks
    )


def _bind(handler: Any, h: SimHost) -> Any:
    def on_message(message: Any) -> None:
        try:
            if not h.alive:
                return
            try:
                env, body = contracts.decode(message.body)
            except ContractError as exc:
                LOG.warning("%s: dropped a malformed message: %s", h.name, exc)
                return
            handler(h, env, body)
        finally:
            message.ack()

    return on_message


def run_worker(
    url: str, hosts: list[tuple[str, list[str]]], interval: float, pipe: Connection
) -> None:
    """A worker process's main: simulate ``hosts`` until told to stop (or SIGINT)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s sim %(message)s")
    sim = Simulator(url, hosts, interval)
    try:
        sim.start()
        pipe.send(("ready", len(hosts)))
        while True:
            while pipe.poll(0):
                cmd = pipe.recv()
                if cmd[0] == "stop":
                    return
                if cmd[0] == "kill":
                    pipe.send(("killed", sim.kill(cmd[1]), time.time()))
                elif cmd[0] == "stats":
                    pipe.send(("stats", sim.snapshot()))
            wait = min(0.05, max(0.001, sim.run_timers()))
            with contextlib.suppress(TimeoutError):
                sim.sub.drain_events(timeout=wait)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        LOG.exception("simulator failed")
        with contextlib.suppress(OSError):
            pipe.send(("error", repr(exc)))
    finally:
        sim.close()
