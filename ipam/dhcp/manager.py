"""The DHCP manager (DESIGN.md, flows 1 and 5): decides which hosts serve which
networks and tells each host its complete list through Host.setDHCP.

It runs in the engine that holds the leader lock (ipam.dhcp.leader), one step every
``interval``: read the hosts (heartbeats) and networks from the store, compute
the placement (ipam.dhcp.placement) from the current one, record each host's wanted
list, and call Host.setDHCP on every live host whose confirmed list differs, with
backoff on failure. Nothing is decided during the grace period after the engine
starts, while the hosts' first heartbeats come in. A host that comes back gets
its (possibly empty) list again, since its confirmed list is then stale.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ipam.bus import host_rpc
from ipam.bus.messaging import Bus
from ipam.dhcp.leader import LeaderLock
from ipam.dhcp.placement import Host, Network, host_lists, place
from ipam.store import Store
from ipam.store.hosts import is_alive

LOG = logging.getLogger(__name__)


class DhcpManager:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        leader: LeaderLock,
        host_down_time: float,
        grace: float,
        interval: float = 0.5,
        call_timeout: float = 30.0,
        load: str = "networks",
    ) -> None:
        self.load = load  # "networks" or "ports": what makes a host loaded
        self.store, self.bus, self.leader = store, bus, leader
        self.host_down_time, self.grace, self.interval = host_down_time, grace, interval
        self.call_timeout = call_timeout
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry: dict[str, tuple[int, float]] = {}  # host -> (failures, next attempt)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dhcp-manager", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Step now, not at the next interval: a port waits for a server, or a host's
        bridges changed (DESIGN.md flow 4: the new server must come up fast)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.call_timeout + 5)
        self.leader.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.leader.try_acquire() and time.monotonic() - self.started >= self.grace:
                    self.step()
            except Exception:
                LOG.exception("DHCP manager step failed; retrying")
            self._wake.wait(self.interval)
            self._wake.clear()

    def step(self) -> None:
        now = time.time()
        rows = {h["name"]: h for h in self.store.list_hosts()}
        hosts = {
            name: Host(
                name, frozenset(h["bridges"]), is_alive(h["last_seen"], self.host_down_time, now)
            )
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
        lists = host_lists(place(networks, hosts, current, weight), networks, hosts)
        for name, wanted in lists.items():
            row = rows[name]
            if wanted != (row["dhcp_desired"] or []):
                LOG.info(
                    "Placement of host %s: %s",
                    name,
                    ", ".join(f"{e['name']}={e['id']}" for e in wanted) or "(none)",
                )
                self.store.set_host_dhcp(name, desired=wanted)
            if hosts[name].live and wanted != row["dhcp_confirmed"]:
                self._set_dhcp(name, wanted)

    def _set_dhcp(self, host: str, networks: list[dict[str, Any]]) -> None:
        failures, next_try = self._retry.get(host, (0, 0.0))
        if time.monotonic() < next_try:
            return
        try:
            host_rpc.set_dhcp(self.bus, host, networks, self.call_timeout, caller="engine-manager")
        except (TimeoutError, host_rpc.HostCallError) as exc:
            delay = min(60.0, 0.5 * 2**failures)
            self._retry[host] = (failures + 1, time.monotonic() + delay)
            LOG.warning("Host.setDHCP on host %s failed (%s); retry in %.1fs", host, exc, delay)
            return
        self._retry.pop(host, None)
        self.store.set_host_dhcp(host, confirmed=networks)
        LOG.info("Host %s confirmed Host.setDHCP with %d network(s)", host, len(networks))
