"""Ports that are ready when the VM starts (DESIGN.md, flow 4).

A port create (or a change of its MAC or IPs) returns once the readiness policy
is met: ``any`` live serving host, or ``all`` of them, acknowledged that its
dnsmasq loaded the port's current revision; ``none`` does not wait. A serving
host is a live agent (heard from within host_down_time) whose heartbeat says its
dnsmasq for the network runs: a freshly placed host counts once it serves. With
no serving host the answer is immediate, DOWN, with the reason.

Acknowledgements reach whichever engine consumed them from the bus; this engine
is woken at once by its own bus server, and reads the store every
``_POLL`` seconds for those another engine recorded.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ipam.store import Store

_POLL = 0.05


class Readiness:
    def __init__(
        self, store: Store, policy: str = "any", timeout: float = 10.0, host_down_time: float = 6.0
    ) -> None:
        self.store, self.policy, self.timeout = store, policy, timeout
        self.host_down_time = host_down_time
        self._cond = threading.Condition()

    def acks_recorded(self) -> None:
        """The bus server recorded acknowledgements: wake the waiting requests."""
        with self._cond:
            self._cond.notify_all()

    def serving_hosts(self, net_id: str) -> list[str]:
        now = time.time()
        out = []
        for agent in self.store.list_agents():
            if now - agent["last_seen"] > self.host_down_time:
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

    def wait(self, port: dict[str, Any]) -> dict[str, Any]:
        """The port as the API returns it: status by the policy, and who acknowledged."""
        if self.policy == "none":
            return dict(port, dhcp_status_reason="Not waited for (ready_policy=none)")
        serving = self.serving_hosts(port["network_id"])
        port = dict(port, dhcp_serving_hosts=serving, dhcp_ready_hosts=[])
        if not serving:
            port.update(
                status="DOWN",
                dhcp_status_reason=(
                    f"No live DHCP server serves network {port['network_id']}: a VM started now "
                    "gets no address until one does."
                ),
            )
            return port
        deadline = time.monotonic() + self.timeout
        while True:
            acked = self._acked(port, serving)
            met = bool(acked) if self.policy == "any" else set(serving) <= set(acked)
            left = deadline - time.monotonic()
            if met or left <= 0:
                break
            with self._cond:
                self._cond.wait(min(left, _POLL))
            # Who serves may change meanwhile: a dead host drops out, a new one takes
            # over (failover) and its acknowledgement counts.
            serving = self.serving_hosts(port["network_id"]) or serving
        port["dhcp_serving_hosts"] = serving
        port.update(status="ACTIVE" if met else "DOWN", dhcp_ready_hosts=acked)
        if not met:
            port["dhcp_status_reason"] = (
                f"Not acknowledged by {'any' if self.policy == 'any' else 'every'} serving "
                f"DHCP server within {self.timeout}s"
            )
        return port
