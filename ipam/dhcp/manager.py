"""The DHCP manager (DESIGN.md, flows 1 and 5): decides which hosts serve which
networks and tells each host its complete list through Host.setDHCP.

It runs in the engine that holds the leader lock (ipam.dhcp.leader), one step when
something changed (``wake``: a host's bridges, a network or subnet, a port that waits
for a server, a host's answer), when a host's heartbeats run out or a retry is due,
and every ``interval`` as a safety net: read the hosts (heartbeats) and networks
from the store, compute the placement (ipam.dhcp.placement) from the current one,
record each host's wanted list, and call Host.setDHCP on every live host whose
confirmed list differs, with backoff on failure. Nothing is decided during the grace
period after the engine starts, while the hosts' first heartbeats come in. A host
that comes back gets its (possibly empty) list again, since its confirmed list is
then stale; one whose bridges did not change is seen at its first heartbeat after
the next timed step.

No host can stall the others: the calls run side by side (one at a time per host,
each with its deadline, ``call_timeout``), and a step never waits for them; an
answer wakes the manager. A host that has owed an answer for ``host_down_time`` is
placed on as if down, even while its heartbeats still arrive (a host service that
hangs, while something else on the host sends them): its networks move, and it is
still called, with backoff, so that its first answer makes it a candidate again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ipam.bus import contracts, host_rpc
from ipam.bus.messaging import Bus
from ipam.dhcp.leader import LeaderLock
from ipam.dhcp.placement import Host, Network, host_lists, place
from ipam.store import Store
from ipam.store.hosts import is_alive

LOG = logging.getLogger(__name__)
#: Host.setDHCP calls in flight at once (one per host at most).
CALL_WORKERS = 16
#: Seconds between tries for the leader lock by an engine that does not hold it.
LEADER_RETRY = 1.0
#: Seconds at least between two timed steps (a wake is never held back).
MIN_STEP_GAP = 0.05
#: Seconds past a deadline (a host's heartbeats running out) before the step for it.
DEADLINE_SLACK = 0.05


def caller_name(host: str) -> str:
    """The manager's caller name (its reply queue) for calls to host: one per host,
    so calls to different hosts do not share a reply queue."""
    name = f"mgr-{host}"
    return name if len(name) <= 63 else "mgr-" + hashlib.sha256(host.encode()).hexdigest()[:32]


class DhcpManager:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        leader: LeaderLock,
        host_down_time: float,
        grace: float,
        interval: float = 5.0,
        call_timeout: float = 30.0,
        load: str = "networks",
        release_after: float = 3600.0,
    ) -> None:
        self.release_after = release_after
        self.load = load  # "networks" or "ports": what makes a host loaded
        self.store, self.bus, self.leader = store, bus, leader
        self.host_down_time, self.grace, self.interval = host_down_time, grace, interval
        self.call_timeout = call_timeout
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry: dict[str, tuple[int, float]] = {}  # host -> (failures, next attempt)
        self._lock = threading.Lock()
        self._calls: dict[str, Future] = {}  # host -> its Host.setDHCP call in flight
        self._owing: dict[str, float] = {}  # host -> since when it owes an answer (monotonic)
        self._pool = ThreadPoolExecutor(CALL_WORKERS, thread_name_prefix="dhcp-call")
        self._released: dict[str, float] = {}  # host -> the last_seen its ports went at
        self.failovers = 0  # placements moved off a host that was down (a metric)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dhcp-manager", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Step now: a port waits for a server, a host's bridges changed (DESIGN.md flow
        4: the new server must come up fast), a network or subnet changed, a host
        answered. (A change made through another engine of the cluster is seen at the
        next timed step.)"""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.call_timeout + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.leader.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self.interval
            try:
                grace_left = self.grace - (time.monotonic() - self.started)
                if not self.leader.try_acquire():
                    due = min(due, LEADER_RETRY)
                elif grace_left > 0:
                    due = min(due, grace_left)
                else:
                    due = min(due, self.step())
            except Exception:
                LOG.exception("DHCP manager step failed; retrying")
                due = min(due, 1.0)
            self._wake.wait(max(MIN_STEP_GAP, due))
            self._wake.clear()

    def step(self) -> float:
        """One pass; returns the seconds until the next one is due (a host's heartbeats
        running out, a host owing an answer for host_down_time, a retry)."""
        now = time.time()
        rows = {h["name"]: h for h in self.store.list_hosts()}
        alive = {n: is_alive(h["last_seen"], self.host_down_time, now) for n, h in rows.items()}
        hosts = {
            name: Host(name, frozenset(h["bridges"]), alive[name] and not self.silent(name))
            for name, h in rows.items()
        }
        dhcp_subnets = {s["network_id"] for s in self.store.list_subnets() if s["enable_dhcp"]}
        networks = [
            Network(
                n["id"],
                n["vdsm_name"],
                n["ha_count"],
                n["admin_state_up"] and n["id"] in dhcp_subnets,
            )
            for n in self.store.list_networks()
        ]
        current: dict[str, list[str]] = {}
        for name, h in sorted(rows.items()):
            for entry in h["dhcp_desired"] or []:
                current.setdefault(entry["id"], []).append(name)
        weight = None
        if self.load == "ports":
            weight = self.store.port_counts()
        placed = place(networks, hosts, current, weight)
        moved = sum(
            1
            for net_id, before in current.items()
            for host in before
            if host in hosts and not hosts[host].live and host not in placed.get(net_id, [])
        )
        if moved:
            self.failovers += moved
            LOG.info("Moved %d placement(s) off hosts that are down", moved)
        lists = host_lists(placed, networks, hosts)
        for name, wanted in lists.items():
            row = rows[name]
            if wanted != (row["dhcp_desired"] or []):
                LOG.info(
                    "Placement of host %s: %s",
                    name,
                    ", ".join(f"{e['name']}={e['id']}" for e in wanted) or "(none)",
                )
                self.store.set_host_dhcp(name, desired=wanted)
            if alive[name] and wanted != row["dhcp_confirmed"]:
                self._set_dhcp(name, wanted)
            if not alive[name] and now - row["last_seen"] > self.release_after:
                self._release_dhcp_ports(name, row["last_seen"], {e["id"] for e in wanted})
        return self._next_due(rows, alive, now)

    def _release_dhcp_ports(self, host: str, last_seen: float, wanted: set[str]) -> None:
        """Delete the DHCP ports of a host gone for release_after, once per absence."""
        if self._released.get(host) == last_seen:
            return
        nets = [n for n in self.store.dhcp_port_networks(host) if n not in wanted]
        for net_id in nets:
            self.store.release_network(host, net_id, by_agent=False)
        self._released[host] = last_seen
        if nets:
            LOG.info(
                "Host %s gone for %.0fs: released its DHCP ports on %d network(s): %s",
                host,
                time.time() - last_seen,
                len(nets),
                ", ".join(nets),
            )
        # Nothing is published to its queues any more (its agent is unsubscribed, and a
        # host that is down is not called): remove them and what they hold. A host that
        # comes back declares them again, and its agent resyncs.
        for queue in (
            contracts.agent_queue(host),
            contracts.reply_queue(host),
            contracts.host_queue(host),
        ):
            try:
                self.bus.delete_queue(queue, purge=True)
            except Exception as exc:
                LOG.warning("Could not remove queue %s of host %s: %s", queue, host, exc)
                return
        LOG.info("Host %s gone: removed its queues on the bus", host)

    def _next_due(self, rows: dict[str, Any], alive: dict[str, bool], now: float) -> float:
        dues = [
            h["last_seen"] + self.host_down_time - now + DEADLINE_SLACK
            for name, h in rows.items()
            if alive[name]
        ]
        dues += [
            h["last_seen"] + self.release_after - now + DEADLINE_SLACK
            for name, h in rows.items()
            if not alive[name] and self._released.get(name) != h["last_seen"]
        ]
        mono = time.monotonic()
        with self._lock:
            dues += [since + self.host_down_time - mono for since in self._owing.values()]
            dues += [at - mono for _, at in self._retry.values()]
        return max(0.0, min(dues, default=self.interval))

    def calling(self) -> set[str]:
        """The hosts with a Host.setDHCP call in flight."""
        with self._lock:
            return set(self._calls)

    def silent(self, host: str) -> bool:
        """Whether host has owed an answer for longer than host_down_time."""
        with self._lock:
            since = self._owing.get(host)
        return since is not None and time.monotonic() - since > self.host_down_time

    def _set_dhcp(self, host: str, networks: list[dict[str, Any]]) -> None:
        """Start Host.setDHCP(networks) on host unless a call to it is in flight (its
        answer wakes the manager, which then sends what is wanted by then) or its
        backoff runs."""
        with self._lock:
            if host in self._calls:
                return
            if time.monotonic() < self._retry.get(host, (0, 0.0))[1]:
                return
            self._owing.setdefault(host, time.monotonic())
            self._calls[host] = self._pool.submit(self._call, host, networks)

    def _call(self, host: str, networks: list[dict[str, Any]]) -> None:
        try:
            host_rpc.set_dhcp(self.bus, host, networks, self.call_timeout, caller_name(host))
        except Exception as exc:
            with self._lock:
                failures = self._retry.get(host, (0, 0.0))[0]
                delay = min(60.0, 0.5 * 2**failures)
                self._retry[host] = (failures + 1, time.monotonic() + delay)
                if isinstance(exc, host_rpc.HostCallError):
                    self._owing.pop(host, None)  # it answered, with an error
            if isinstance(exc, (TimeoutError, host_rpc.HostCallError)):
                LOG.warning("Host.setDHCP on host %s failed (%s); retry in %.1fs", host, exc, delay)
            else:
                LOG.exception("Host.setDHCP on host %s failed; retry in %.1fs", host, delay)
        else:
            with self._lock:
                self._retry.pop(host, None)
                recovered = self._owing.pop(host, None)
            try:
                self.store.set_host_dhcp(host, confirmed=networks)
            except Exception:  # the next step finds it unconfirmed and calls again
                LOG.exception("Recording host %s's confirmation failed", host)
                return
            LOG.info("Host %s confirmed Host.setDHCP with %d network(s)", host, len(networks))
            if recovered is not None and time.monotonic() - recovered > self.host_down_time:
                LOG.info("Host %s answers again: it may serve networks again", host)
        finally:
            with self._lock:
                self._calls.pop(host, None)
            self.wake()
