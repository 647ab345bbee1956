"""A stand-in DHCP agent on the bus, for tests and benchmarks of the engine alone:
it heartbeats that its dnsmasq runs the networks it is given (which subscribes it to
their events) and acknowledges every port event it receives at once, as a real
agent does once its dnsmasq loaded the port. No dnsmasq, no namespaces, no root.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ipam.bus import contracts
from ipam.bus.contracts import (
    AckedPort,
    Envelope,
    Heartbeat,
    PortAck,
    PortEvent,
    ServedNetworkReport,
)
from ipam.bus.messaging import Bus


class AckingAgent:
    """Agent of ``host`` serving ``networks``; ``acked`` counts the ports it
    acknowledged. Stop it with stop()."""

    def __init__(
        self,
        url: str,
        host: str,
        networks: list[str],
        heartbeat_every: float = 1.0,
        polling_interval: float = 0.002,
    ) -> None:
        self.host, self.networks, self.heartbeat_every = host, list(networks), heartbeat_every
        self.bus = Bus(url, polling_interval=polling_interval, name=f"ackagent-{host}")
        self.started_at = time.time()
        self.acked = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> AckingAgent:
        self.heartbeat()
        for target, name in ((self._consume, "consume"), (self._beat, "heartbeat")):
            thread = threading.Thread(target=target, name=f"ackagent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def heartbeat(self) -> None:
        body = Heartbeat(
            host=self.host,
            started_at=self.started_at,
            networks=[
                ServedNetworkReport(id=net, ports=0, dnsmasq="running") for net in self.networks
            ],
        )
        self.bus.publish(contracts.ENGINE_QUEUE, contracts.make("agent.heartbeat", body, self.host))

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            self.heartbeat()

    def _consume(self) -> None:
        self.bus.consume(contracts.agent_queue(self.host), self._handle, self._stop)

    def _handle(self, env: Envelope, body: Any) -> None:
        if env.type != "port.update" or not isinstance(body, PortEvent):
            return
        port = body.port
        ack = PortAck(
            host=self.host,
            network_id=port.network_id,
            ports=[AckedPort(id=port.id, revision_number=port.revision_number)],
        )
        self.bus.publish(contracts.ENGINE_QUEUE, contracts.make("port.ack", ack, self.host))
        with self._lock:
            self.acked += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.bus.close()
