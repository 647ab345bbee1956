"""The DHCP agent (``ovirt-ipam dhcp-agent``): serves the networks the interface
driver accepts, one dnsmasq each, and acknowledges ports once dnsmasq holds them.

Threads: one consumer of this host's event queue, one worker per served network
(events of a network are applied in order, by that network's worker only), and
the main loop (heartbeats, periodic resync, reconcile on SIGHUP or when the
mapping file changes). Any error in a network's worker triggers a resync of that
network.

Nothing runs on a fixed short tick while nothing happens (issue 18): a network's
worker wakes for an event, for a change in its dnsmasq's directory (a new log line:
lease facts go to the engine at once), and for its dnsmasq's exit (a pidfd,
watched by one thread for the whole agent); the main loop for its next heartbeat or
resync, SIGHUP, or a change in the mapping file's directory (inotify). Periodic
looks remain as a safety net only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import selectors
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from oslo_config import cfg
from pydantic import BaseModel

from dhcp_driver.ack_lag import AckLag
from dhcp_driver.dnsmasq_config import Paths
from dhcp_driver.dnsmasq_log import watch_directory
from dhcp_driver.dnsmasq_process import DnsmasqProcess
from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.mapping import MappingError, read_mapping
from dhcp_driver.served_network import ServedNetwork
from ipam.bus import contracts
from ipam.bus.contracts import Envelope, NetworkState, PortState
from ipam.bus.messaging import Bus
from ipam.bus.outbox import Outbox
from vdsm_verb import config as host_config  # noqa: F401 (registers [host] vdsm_netconf_dir)

LOG = logging.getLogger(__name__)
_STOP = object()
_NUDGE = object()  # something to look at: dnsmasq logged, or exited
#: Seconds between a worker's looks at its dnsmasq when nothing woke it: a safety net
#: (reaping dhcp_release6 runs, the log's rotation, an exit the pidfd missed).
SUPERVISE_S = 5.0
#: Seconds between looks where events cannot wake the worker (no pidfd), and while
#: lease facts wait for dnsmasq's lease file (lease_log's ticks).
TICK_S = 0.2
#: Seconds at least between two looks at a dnsmasq that exited and is not back yet.
RESPAWN_LOOK_S = 0.05
#: Seconds at most between the main loop's looks at the mapping file without an event.
MAPPING_LOOK_S = 5.0


class ExitWatch:
    """Calls back when a process exits, for any process (a child or an adopted
    dnsmasq): one pidfd each, all watched by one thread, so that no worker has to
    look every tick whether its dnsmasq still lives."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wakeup_r, self._wakeup_w = os.pipe()  # a registration ends the select
        os.set_blocking(self._wakeup_r, False)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._run, name="exits", daemon=True).start()

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "pidfd_open")

    def watch(self, pid: int, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (in the watching thread) once pid has exited; False if
        it cannot be watched (no pidfd: the caller looks for itself). A pid that is
        gone already calls back at once."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            callback()
            return True
        except (AttributeError, OSError) as exc:
            LOG.debug("No pidfd for pid %d: %s", pid, exc)
            return False
        with self._lock:
            self._selector.register(fd, selectors.EVENT_READ, callback)
        os.write(self._wakeup_w, b"x")
        return True

    def _run(self) -> None:
        while True:
            try:
                ready = self._selector.select()
            except OSError:
                LOG.exception("Watching dnsmasq exits failed; workers look periodically")
                return
            for key, _ in ready:
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wakeup_r, 4096)
                    continue
                with self._lock:
                    self._selector.unregister(key.fd)
                os.close(key.fd)
                try:
                    key.data()
                except Exception:
                    LOG.exception("A process exit's callback failed")


_exit_watch: ExitWatch | None = None
_exit_watch_lock = threading.Lock()


def exit_watch() -> ExitWatch | None:
    """The agent's ExitWatch; None without pidfds (Linux before 5.3)."""
    global _exit_watch
    if not ExitWatch.supported():
        return None
    with _exit_watch_lock:
        if _exit_watch is None:
            _exit_watch = ExitWatch()
        return _exit_watch


def _gateways(state: NetworkState) -> list[str]:
    """With the DNS service, the gateways of the subnets the DHCP port is on: the
    resolvers it forwards to may be beyond them."""
    if not state.network.dns_service or state.dhcp_port is None:
        return []
    on = {f.subnet_id for f in state.dhcp_port.fixed_ips}
    return [s.gateway_ip for s in state.subnets if s.id in on and s.gateway_ip]


class NetworkWorker(threading.Thread):
    """Applies one network's state and events in order; resyncs it after an error."""

    def __init__(self, agent: Agent, network_id: str, vdsm_name: str) -> None:
        super().__init__(name=f"net-{network_id[:8]}", daemon=True)
        self.agent, self.network_id, self.vdsm_name = agent, network_id, vdsm_name
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.served: ServedNetwork | None = None
        self.resync_due = 0.0
        self.failures = 0
        self._nudged = threading.Event()  # a _NUDGE is in the inbox, not yet taken
        self._watched_pid: int | None = None  # the dnsmasq whose exit calls nudge
        self._exited: set[int] = set()  # watched dnsmasq pids that have exited
        self.lag = AckLag()  # how far behind the engine's port changes (heartbeats)

    def put(self, item: Any) -> None:
        if isinstance(item, tuple) and item[0] in ("port.update", "port.delete"):
            port: PortState = item[1]
            if item[0] == "port.delete":
                self.lag.forget(port.id, port.revision_number)
            elif port.device_owner != contracts.DHCP_OWNER:  # DHCP ports get no ack
                self.lag.received(port.id, port.revision_number)
        self.inbox.put(item)

    def nudge(self) -> None:
        """Look at dnsmasq soon (its log grew, or it exited): one _NUDGE in the inbox
        at a time, however many events came."""
        if not self._nudged.is_set():
            self._nudged.set()
            self.inbox.put(_NUDGE)

    def _exit_of(self, pid: int) -> Callable[[], None]:
        def exited() -> None:
            self._exited.add(pid)
            self.nudge()

        return exited

    def _watch(self) -> None:
        """Have the running dnsmasq's exit and its log's growth wake this worker."""
        served = self.served
        if served is None:
            self._watched_pid = None
            return
        served.log.on_change = self.nudge
        pid = served.process.pid
        if pid is None or pid == self._watched_pid:
            return
        self._exited.discard(pid)
        watch = exit_watch()
        watched = watch is not None and watch.watch(pid, self._exit_of(pid))
        self._watched_pid = pid if watched else None

    def _timeout(self) -> float:
        """Seconds until this worker must look even if nothing wakes it."""
        now = time.monotonic()
        due = [SUPERVISE_S]
        if self.resync_due:
            due.append(self.resync_due - now)
        served = self.served
        if served is not None:
            pid = served.process.pid
            if pid is None or pid != self._watched_pid:
                due.append(TICK_S)  # its exit would wake nobody: look as often as before
            elif pid in self._exited:  # respawn after its backoff (check() moves it on)
                due.append(max(RESPAWN_LOOK_S, served.process.next_start - now))
            if served.leases.pending:
                due.append(TICK_S)  # facts wait for the lease file (lease_log)
        return max(0.0, min(due))

    def run(self) -> None:
        while True:
            try:
                item = self.inbox.get(timeout=self._timeout())
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is _NUDGE:
                self._nudged.clear()  # what happens from now on nudges again
                item = None
            try:
                self._handle(item)
                self._publish_leases()
                self.failures = 0
            except Exception:
                self.failures += 1
                delay = min(30.0, 0.5 * 2 ** (self.failures - 1))
                LOG.exception("Network %s: error, resync in %.1fs", self.network_id, delay)
                self.resync_due = time.monotonic() + delay
            self._watch()

    def _handle(self, item: Any) -> None:
        if item is None:
            if self.resync_due and time.monotonic() >= self.resync_due:
                self.resync_due = 0.0
                self._sync()
            elif self.served is not None:
                self._ack(self.served.check())
            return
        kind, payload = item
        if kind == "state":
            self._apply(payload)
        elif kind == "resync":
            self._sync()
        elif self.served is None:
            self.resync_due = self.resync_due or time.monotonic()
        elif kind == "port.update":
            updates = [payload]
            while True:  # coalesce what is already queued into one batch
                try:
                    nxt = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is _NUDGE:  # the batch's own log lines: published after it
                    self._nudged.clear()
                    continue
                if nxt is _STOP or nxt[0] != "port.update":
                    self.inbox.queue.appendleft(nxt)
                    break
                updates.append(nxt[1])
            self._ack(self.served.update_ports(updates))
        elif kind == "port.delete":
            self.served.delete_port(payload)

    def _sync(self) -> None:
        states, missing = self.agent.sync([self.network_id])
        if missing:
            LOG.warning("Network %s: unknown to the engine; not serving it", self.network_id)
            self._teardown()
            return
        self._apply(states[0])

    def _apply(self, state: NetworkState) -> None:
        agent = self.agent
        if state.network.vdsm_name != self.vdsm_name:
            LOG.error(
                "Network %s: the engine calls its bridge %s, the mapping %s; not serving it",
                self.network_id,
                state.network.vdsm_name,
                self.vdsm_name,
            )
            self._teardown()
            return
        port = state.dhcp_port
        if port is None or not port.fixed_ips:
            LOG.info("Network %s: no DHCP-enabled subnet; no DHCP server", self.network_id)
            self._teardown()
            return
        agent.driver.plug_new(self.network_id, port.mac_address, self.vdsm_name, state.network.mtu)
        prefixes = {s.id: s.cidr.split("/")[1] for s in state.subnets}
        agent.driver.init_l3(
            self.network_id, [f"{f.ip_address}/{prefixes[f.subnet_id]}" for f in port.fixed_ips]
        )
        agent.driver.set_gateways(self.network_id, _gateways(state))
        first = self.served is None
        if self.served is None:
            self.served = ServedNetwork(
                self.network_id,
                agent.network_dir(self.network_id),
                agent.driver.namespace_name(self.network_id),
                agent.driver.device_names(self.network_id)[1],
                lease_time=agent.conf.dhcp_agent.lease_time,
                confirm_timeout=agent.conf.dhcp_agent.confirm_timeout,
                dnsmasq_binary=agent.conf.dhcp_agent.dnsmasq_binary,
            )
        self._ack(self.served.apply_state(state))
        self.lag.keep_only(p.id for p in state.ports)  # owed: what the state still has
        if first:  # the engine counts this host as serving from its next heartbeat
            agent.beat_soon()
        LOG.info(
            "Network %s: serving %d port(s) on bridge %s",
            self.network_id,
            self.served.ports_count(),
            self.vdsm_name,
        )

    def _publish_leases(self) -> None:
        """What dnsmasq logged of its clients, as one batch per tick at most."""
        if self.served is None:
            return
        batch = self.served.lease_facts()
        if batch is None:
            return
        facts, unparsed, rebuilt = batch
        self.agent.publish(
            "lease.facts",
            contracts.LeaseFacts(
                host=self.agent.host,
                network_id=self.network_id,
                facts=facts,
                unparsed=unparsed,
                rebuilt=rebuilt,
            ),
        )

    def _ack(self, acks: list[contracts.AckedPort] | None) -> None:
        if acks:
            self.lag.acked((a.id, a.revision_number) for a in acks)
            self.agent.publish(
                "port.ack",
                contracts.PortAck(host=self.agent.host, network_id=self.network_id, ports=acks),
            )

    def _teardown(self) -> None:
        self.lag.keep_only(())
        if self.served is not None:
            self.served.stop()
            self.served = None
        self.agent.driver.unplug(self.network_id)

    def health(self) -> Literal["running", "starting", "down"]:
        if self.served is None:
            return "starting" if self.resync_due else "down"
        return "running" if self.served.process.alive() else "down"

    def stop(self, cleanup: bool) -> None:
        self.put(_STOP)
        self.join(30)
        if cleanup:
            self._teardown()
            shutil.rmtree(self.agent.network_dir(self.network_id), ignore_errors=True)
        elif self.served is not None:
            self.served.log.close()


class Agent:
    def __init__(self, conf: cfg.ConfigOpts, bus: Bus) -> None:
        self.conf, self.bus = conf, bus
        self.outbox = Outbox(bus)  # acknowledgements and releases wait out a lost bus
        self.host = contracts.validate_host(conf.dhcp_agent.host)
        self.driver = OvirtInterfaceDriver(
            conf.dhcp_agent.mapping_file,
            conf.dhcp_agent.namespace_prefix,
            conf.host.vdsm_netconf_dir,
        )
        self.state_dir = Path(conf.state_path) / "dhcp"
        self.workers: dict[str, NetworkWorker] = {}
        self.stopping = threading.Event()
        self.reconcile_wanted = threading.Event()
        self.beat_now = threading.Event()
        self.wake = threading.Event()  # the main loop sleeps on it: something to do
        self.started_at = time.time()
        self._call_lock = threading.Lock()
        self._mapping_stamp: tuple[int, int] | None = None

    def network_dir(self, network_id: str) -> Path:
        return self.state_dir / network_id

    # -- talking to the engine ---------------------------------------------------
    def publish(self, type_: str, body: BaseModel) -> None:
        self.outbox.send(contracts.ENGINE_QUEUE, contracts.make(type_, body, self.host))

    def sync(self, network_ids: list[str]) -> tuple[list[NetworkState], list[str]]:
        request = contracts.make(
            "sync.request", contracts.SyncRequest(host=self.host, networks=network_ids), self.host
        )
        with self._call_lock:  # one reply queue: one call at a time
            _, reply = self.bus.call(
                contracts.ENGINE_QUEUE,
                request,
                contracts.reply_queue(self.host),
                self.conf.dhcp_agent.sync_timeout,
            )
        if not isinstance(reply, contracts.SyncReply):
            raise contracts.ContractError(f"the reply to sync.request is a {type(reply).__name__}")
        return reply.networks, reply.missing

    def on_message(self, env: Envelope, body: BaseModel) -> None:
        # The body's model follows from env.type (contracts.TYPES).
        if isinstance(body, contracts.PortEvent):  # port.update, port.delete
            port: PortState = body.port
            worker = self.workers.get(port.network_id)
            if worker is not None:
                worker.put((env.type, port))
        elif isinstance(body, contracts.SubnetEvent | contracts.NetworkEvent):  # .update, .delete
            worker = self.workers.get(body.network_id)
            if worker is not None:
                worker.put(("resync", None))
        elif isinstance(body, contracts.EngineStarted):
            LOG.info("The engine (re)started at %.3f", body.started_at)
            self.resync_all()
        else:
            LOG.warning("Ignoring %s message %s from %s", env.type, env.id, env.sender)

    # -- what to serve --------------------------------------------------------------
    def wanted(self) -> dict[str, str]:
        """Network id -> VDSM name of the networks the driver says this host serves."""
        try:
            mapping = read_mapping(self.conf.dhcp_agent.mapping_file)
        except MappingError as exc:
            LOG.error("Cannot read the network mapping: %s; keeping the current networks", exc)
            return {k: w.vdsm_name for k, w in self.workers.items()}
        return {
            net_id: name for net_id, name in mapping.items() if self.driver.serves(net_id, name)
        }

    def reconcile(self) -> None:
        wanted = self.wanted()
        for net_id in [k for k in self.workers if k not in wanted]:
            LOG.info("Network %s: no longer served here; stopping its DHCP server", net_id)
            self.workers.pop(net_id).stop(cleanup=True)
            self.publish(
                "network.release", contracts.NetworkRelease(host=self.host, network_id=net_id)
            )
        new = {k: v for k, v in wanted.items() if k not in self.workers}
        if not new:
            return
        for net_id, name in new.items():
            worker = NetworkWorker(self, net_id, name)
            self.workers[net_id] = worker
            worker.start()
        try:
            states, missing = self.sync(list(new))
        except Exception as exc:
            LOG.warning("Sync of %d network(s) failed (%s); each will retry", len(new), exc)
            for net_id in new:
                self.workers[net_id].put(("resync", None))
            return
        for state in states:
            self.workers[state.network.id].put(("state", state))
        for net_id in missing:
            LOG.warning("Network %s: in the mapping but unknown to the engine", net_id)
            self.workers[net_id].put(("resync", None))

    def cleanup_stale(self) -> None:
        """At start: stop dnsmasq and remove files and links of networks not wanted."""
        remove_dhcp_state(self.state_dir, self.driver, keep=set(self.wanted()))

    def heartbeat(self) -> None:
        networks = [
            contracts.ServedNetworkReport(
                id=k,
                ports=w.served.ports_count() if w.served else 0,
                dnsmasq=w.health(),
                ack_lag_s=round(w.lag.report(), 3),
            )
            for k, w in self.workers.items()
        ]
        beat = contracts.Heartbeat(host=self.host, started_at=self.started_at, networks=networks)
        try:  # a heartbeat that cannot go now is stale by the next: not held
            self.bus.publish(
                contracts.ENGINE_QUEUE, contracts.make("agent.heartbeat", beat, self.host)
            )
        except Exception as exc:
            LOG.warning("Heartbeat not sent: %s: %s", type(exc).__name__, exc)

    def resync_all(self) -> None:
        """Every network asks the engine for its whole state again (after the bus came
        back: events sent while it was away may be lost with a restarted broker)."""
        LOG.info("Resyncing %d network(s)", len(self.workers))
        for worker in list(self.workers.values()):
            worker.put(("resync", None))

    def beat_soon(self) -> None:
        """Send a heartbeat now, not at the next interval."""
        self.beat_now.set()
        self.wake.set()

    def stop(self) -> None:
        """End run() (SIGTERM, SIGINT)."""
        self.stopping.set()
        self.wake.set()

    def _reconcile_soon(self) -> None:
        """Host.setDHCP changed the mapping (SIGHUP): reconcile now, not at the main
        loop's next turn; a network just set up is then served at once."""
        self.reconcile_wanted.set()
        self.beat_soon()

    def _watch_mapping(self) -> bool:
        """Wake the main loop when the mapping file's directory changes (the verb
        replaces the file by rename), as the SIGHUP that follows does; False where it
        cannot be watched (the loop then looks every TICK_S)."""
        directory = os.path.dirname(os.path.abspath(self.conf.dhcp_agent.mapping_file))
        try:
            watch_directory(directory, self.wake.set)
        except OSError as exc:
            LOG.warning(
                "Cannot watch %s (%s); looking at the mapping every %.1fs",
                directory,
                exc,
                TICK_S,
            )
            return False
        return True

    def _mapping_changed(self) -> bool:
        """The verb replaces the file by rename: a new inode (or mtime) means a change."""
        try:
            st = os.stat(self.conf.dhcp_agent.mapping_file)
            stamp: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        changed, self._mapping_stamp = stamp != self._mapping_stamp, stamp
        return changed

    # -- the process ----------------------------------------------------------------
    def run(self) -> None:
        ensure_inotify_instances(INOTIFY_INSTANCES)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self._reconcile_soon())
        LOG.info(
            "DHCP agent starting on host %s (mapping %s)",
            self.host,
            self.conf.dhcp_agent.mapping_file,
        )
        self.cleanup_stale()
        consumer = threading.Thread(
            target=self.bus.consume,
            name="events",
            daemon=True,
            args=(contracts.agent_queue(self.host), self.on_message, self.stopping),
            kwargs={"on_reconnect": self.resync_all},
        )
        consumer.start()
        cfg_ = self.conf.dhcp_agent
        look = MAPPING_LOOK_S if self._watch_mapping() else TICK_S
        next_beat = next_resync = retry_at = 0.0
        while not self.stopping.is_set():
            self.wake.clear()  # before looking: what happens from now on wakes the wait
            now = time.monotonic()
            retry = bool(retry_at) and now >= retry_at
            if (
                retry
                or self.reconcile_wanted.is_set()
                or self._mapping_changed()
                or not next_resync
            ):
                self.reconcile_wanted.clear()
                retry_at = 0.0
                try:
                    self.reconcile()
                except Exception:  # one bad turn must not end the agent
                    LOG.exception("Reconciling the served networks failed; retrying in 2s")
                    retry_at = now + 2.0
            if now >= next_beat or self.beat_now.is_set():
                self.beat_now.clear()
                self.heartbeat()
                next_beat = now + cfg_.heartbeat_interval
            if next_resync and now >= next_resync:
                for worker in self.workers.values():
                    worker.put(("resync", None))
            if not next_resync or now >= next_resync:
                next_resync = now + cfg_.resync_interval
            due = min(next_beat, next_resync, retry_at or next_beat) - time.monotonic()
            self.wake.wait(max(0.0, min(due, look)))
        LOG.info("DHCP agent stopping; dnsmasq processes keep serving")
        for worker in self.workers.values():
            worker.stop(cleanup=False)
        consumer.join(5)
        self.outbox.close()
        self.bus.close()


INOTIFY_INSTANCES = 1024
_INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")


def ensure_inotify_instances(wanted: int) -> None:
    """Every dnsmasq watches its hostsdir with an inotify instance of its own, and the
    kernel's default allows 128 per user: raise it (also shipped in etc/sysctl.d)."""
    try:
        current = int(_INOTIFY_LIMIT.read_text())
    except (OSError, ValueError):
        return
    if current >= wanted:
        return
    try:
        _INOTIFY_LIMIT.write_text(f"{wanted}\n")
        LOG.info(
            "Raised fs.inotify.max_user_instances from %d to %d (one per dnsmasq)", current, wanted
        )
    except OSError as exc:
        LOG.error(
            "fs.inotify.max_user_instances is %d and cannot be raised (%s): at most "
            "about that many networks can be served",
            current,
            exc,
        )


def remove_dhcp_state(state_dir: Path, driver: OvirtInterfaceDriver, keep: set[str]) -> None:
    """Stop the dnsmasq of every network not in keep, remove its files, links and
    namespace (at agent start, and for the verb's empty list)."""
    if state_dir.exists():
        for entry in os.scandir(state_dir):
            if entry.is_dir() and entry.name not in keep:
                proc = DnsmasqProcess(entry.name, Paths(Path(entry.path)), "-")
                if proc.adopt():
                    proc.stop()
                shutil.rmtree(entry.path, ignore_errors=True)
                LOG.info("Network %s: removed its DHCP state", entry.name)
    driver.cleanup_stale(keep)


def shutdown_all(conf: cfg.ConfigOpts) -> None:
    """Stop serving everything (the verb's empty list): dnsmasq, links, files."""
    driver = OvirtInterfaceDriver(conf.dhcp_agent.mapping_file, conf.dhcp_agent.namespace_prefix)
    remove_dhcp_state(Path(conf.state_path) / "dhcp", driver, keep=set())


def cleanup_unmapped(conf: cfg.ConfigOpts) -> int:
    """``ovirt-ipam dhcp-cleanup``: stop the DHCP servers (dnsmasq, links, files) of
    every network not in the mapping, as a stopped agent leaves them running. VDSM's
    setDHCP runs it (ovirt-ipam-dhcp-cleanup.service) after stopping the agent for an
    empty list. An unreadable mapping stops nothing (exit status 1)."""
    try:
        keep = set(read_mapping(conf.dhcp_agent.mapping_file))
    except MappingError as exc:
        LOG.error("Cannot read the network mapping: %s; nothing stopped", exc)
        return 1
    driver = OvirtInterfaceDriver(conf.dhcp_agent.mapping_file, conf.dhcp_agent.namespace_prefix)
    remove_dhcp_state(Path(conf.state_path) / "dhcp", driver, keep=keep)
    return 0
