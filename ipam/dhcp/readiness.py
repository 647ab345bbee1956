"""Ports that are ready when the VM starts (DESIGN.md, flow 4).

A port create (or a change of its MAC, IPs, dns_name or extra_dhcp_opts) returns
once the readiness policy is met: ``any`` live serving host, or ``all`` of them,
acknowledged that its dnsmasq loaded the port's current revision; ``none`` does not
wait. A serving host is a live agent (heard from within host_down_time) whose heartbeat says its
dnsmasq for the network runs: a freshly placed host counts once it serves.

A network that no server runs yet but one is coming for (a DHCP-enabled
subnet, HA count above 0, administratively up, a live host carrying its bridge:
just created, just set up on a host, just failed over) is waited for within the
same timeout, and the DHCP manager is woken so it places the server now. Only a
network that no host can serve (down, HA count 0, no bridge, no DHCP-enabled subnet,
no live host carrying its bridge) answers at once, DOWN, with the reason: a VM
started on that answer would get no address whatever it waits.

Acknowledgements reach whichever engine consumed them from the bus; this engine
is woken at once by its own bus server (an API worker: by its engine process,
ipam.api.wakeups), and reads the store every ``_POLL`` seconds for those another
engine recorded. A wake-up that comes while a request reads the store is not lost:
the request looks again before it sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ipam.store import Store, networks
from ipam.store.hosts import is_alive

_POLL = 0.05


class Readiness:
    def __init__(
        self,
        store: Store,
        policy: str = "any",
        timeout: float = 10.0,
        host_down_time: float = 6.0,
        on_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.policy, self.timeout = store, policy, timeout
        self.host_down_time = host_down_time
        self.on_waiting = on_waiting  # wakes the DHCP manager: a server is wanted now
        self._cond = threading.Condition()
        self._recorded = 0  # acknowledgement batches recorded so far (wake-ups)

    def acks_recorded(self) -> None:
        """The bus server recorded acknowledgements: wake the waiting requests."""
        with self._cond:
            self._recorded += 1
            self._cond.notify_all()

    def serving_hosts(self, net_id: str) -> list[str]:
        now = time.time()
        out = []
        for agent in self.store.list_agents():
            if not is_alive(agent["last_seen"], self.host_down_time, now):
                continue
            for net in (agent.get("status") or {}).get("networks", []):
                if net.get("id") == net_id and net.get("dnsmasq") == "running":
                    out.append(agent["host"])
        return sorted(out)

    def _acked(self, port: dict[str, Any], serving: list[str]) -> list[str]:
        return sorted(
            a["host"]
            for a in self.store.port_acks(port["id"])
            if a["revision_number"] == port["revision_number"] and a["host"] in serving
        )

    def unservable(self, net_id: str) -> str | None:
        """Why no DHCP server can serve the network now, or None if one can."""
        net = self.store.get_network(net_id)
        if not net["admin_state_up"]:
            return f"Network {net_id} is administratively down: no DHCP server serves it."
        if not net["ha_count"]:
            return f"Network {net_id} has HA count 0: no DHCP server serves it."
        if net["vdsm_name"] is None:
            return self._no_bridge(net)
        if net_id not in self.store.networks_with_dhcp_subnets([net_id]):
            return f"Network {net_id} has no DHCP-enabled subnet: no DHCP server serves it."
        now = time.time()
        if not any(
            net["vdsm_name"] in h["bridges"] and is_alive(h["last_seen"], self.host_down_time, now)
            for h in self.store.list_hosts()
        ):
            return (
                f"No live host carries bridge {net['vdsm_name']} of network {net_id}: no DHCP "
                "server can serve it, and a VM started now gets no address until one does."
            )
        return None

    def _no_bridge(self, net: dict[str, Any]) -> str:
        candidate = networks.bridge_candidate(net["name"], net.get(networks.PHYSNET))
        holders = self.store.list_networks({"vdsm_name": [candidate]}) if candidate else []
        holder = next((n["id"] for n in holders if n["id"] != net["id"]), None)
        return networks.no_bridge_reason(net, holder)

    def wait(self, port: dict[str, Any]) -> dict[str, Any]:
        """The port as the API returns it: status by the policy, and who acknowledged."""
        if self.policy == "none":
            return dict(port, dhcp_status_reason="Not waited for (ready_policy=none)")
        net_id = port["network_id"]
        serving = self.serving_hosts(net_id)
        port = dict(port, dhcp_serving_hosts=serving, dhcp_ready_hosts=[])
        if not serving:
            reason = self.unservable(net_id)
            if reason is not None:
                port.update(status="DOWN", dhcp_status_reason=reason)
                return port
            if self.on_waiting is not None:
                self.on_waiting()
        deadline = time.monotonic() + self.timeout
        acked: list[str] = []
        while True:
            with self._cond:
                seen = self._recorded
            acked = self._acked(port, serving) if serving else []
            met = (
                bool(acked)
                if self.policy == "any"
                else bool(serving) and set(serving) <= set(acked)
            )
            left = deadline - time.monotonic()
            if met or left <= 0:
                break
            with self._cond:
                if self._recorded == seen:  # else acks came while we read: look again
                    self._cond.wait(min(left, _POLL))
            # Who serves may change meanwhile: a server comes up, a dead host drops
            # out, a new one takes over (failover) and its acknowledgement counts.
            serving = self.serving_hosts(net_id) or serving
        port["dhcp_serving_hosts"] = serving
        port.update(status="ACTIVE" if met else "DOWN", dhcp_ready_hosts=acked)
        if not met and not serving:
            port["dhcp_status_reason"] = (
                f"No DHCP server for network {net_id} started within {self.timeout}s"
            )
        elif not met:
            port["dhcp_status_reason"] = (
                f"Not acknowledged by {'any' if self.policy == 'any' else 'every'} serving "
                f"DHCP server within {self.timeout}s"
            )
        return port
