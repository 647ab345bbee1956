"""The engine's end of the bus: answers the DHCP agents on ENGINE_QUEUE.

- ``sync.request``: subscribes the host to the networks it asks for, first, then
  answers with their full state (network, subnets, ports) and the host's own DHCP
  port on each (created or brought up to date here); unknown ids, and networks
  without a bridge (vdsm_name null), are ``missing``.
  Subscribing first means that a change committed after the state was read is
  also published to the agent, so nothing falls between the two.
- ``port.ack``: records the readiness acknowledgements; a port acknowledged at
  its current revision becomes ACTIVE (its revision_number unchanged).
- ``lease.facts``: stores what the host's dnsmasq saw of its clients
  (ipam.store.leases); a decline is logged as a warning and counted.
- ``agent.heartbeat``: records the heartbeat; its networks become the host's
  subscription.
- ``network.release``: unsubscribes the host from the network and deletes its
  DHCP port there.

Anything else is logged and dropped. One consumer thread per engine process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ipam.bus import contracts
from ipam.bus.contracts import (
    Envelope,
    Heartbeat,
    LeaseFacts,
    NetworkRelease,
    NetworkState,
    PortAck,
    SyncReply,
    SyncRequest,
)
from ipam.bus.messaging import Bus
from ipam.dhcp.notifier import (
    SENDER,
    Notifier,
    network_info,
    port_state,
    subnet_state,
)
from ipam.exceptions import IpamError, NetworkNotFound
from ipam.store import Store
from ipam.store.agents import dhcp_device_id

LOG = logging.getLogger(__name__)


class _NoBridge(Exception):
    """The network has no bridge (vdsm_name null): no agent can serve it, and the
    contract's NetworkInfo needs a valid VDSM name, so it is answered as missing."""


class BusServer:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        notifier: Notifier,
        on_acks: Callable[[], None] | None = None,
        on_bridges_changed: Callable[[], None] | None = None,
    ) -> None:
        self.on_acks = on_acks  # wakes requests waiting for readiness (ipam.dhcp.readiness)
        self.on_bridges_changed = on_bridges_changed  # wakes the DHCP manager
        #: (network id, declines, unparsed lines) of each lease batch: the metrics.
        self.on_leases: Callable[[str, int, int], None] | None = None
        self._bridges: dict[str, list[str]] = {}  # host -> bridges of its last heartbeat
        self.store = store
        self.bus = bus
        self.notifier = notifier
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, Any] = {
            "sync.request": self._sync,
            "port.ack": self._ack,
            "lease.facts": self._leases,
            "agent.heartbeat": self._heartbeat,
            "network.release": self._release,
            "host.heartbeat": self._host_heartbeat,
        }

    def start(self) -> None:
        """Consume ENGINE_QUEUE in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.bus.consume,
            args=(contracts.ENGINE_QUEUE, self.handle, self._stop),
            name="bus-server",
            daemon=True,
        )
        self._thread.start()
        LOG.info("Bus server consuming %s on %s", contracts.ENGINE_QUEUE, self.bus.safe_url)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def handle(self, env: Envelope, body: BaseModel) -> None:
        handler = self._handlers.get(env.type)
        if handler is None:
            LOG.warning(
                "Dropped %s %s from %s: not a message for the engine", env.type, env.id, env.sender
            )
            return
        handler(env, body)

    # -- handlers ---------------------------------------------------------------------

    def _host_heartbeat(self, env: Envelope, beat: contracts.HostHeartbeat) -> None:
        self.store.host_heartbeat(beat.host, list(beat.bridges), beat.started_at)
        LOG.debug("Heartbeat of host %s: bridges %s", beat.host, ",".join(beat.bridges))
        if self._bridges.get(beat.host) != beat.bridges:
            self._bridges[beat.host] = list(beat.bridges)
            if self.on_bridges_changed is not None:
                self.on_bridges_changed()

    def _sync(self, env: Envelope, req: SyncRequest) -> None:
        if not env.reply_to:
            LOG.warning("Dropped sync.request %s from %s: no reply_to", env.id, req.host)
            return
        host = req.host
        wanted = list(dict.fromkeys(req.networks))
        # Subscribe first: what changes after the state is read below is published.
        self.store.subscribe_agent(host, wanted)
        states, missing = [], []
        for net_id in wanted:
            try:
                states.append(self._network_state(net_id, host))
            except NetworkNotFound:
                missing.append(net_id)
            except _NoBridge:
                LOG.warning(
                    "Sync of host %s: network %s has no bridge (vdsm_name null): not served",
                    host,
                    net_id,
                )
                missing.append(net_id)
        reply = contracts.make("sync.reply", SyncReply(networks=states, missing=missing), SENDER)
        self.bus.reply(env, reply)
        LOG.info(
            "Sync of host %s: %d network(s), %d port(s), missing %s",
            host,
            len(states),
            sum(len(s.ports) for s in states),
            ",".join(missing) or "none",
        )

    def _network_state(self, net_id: str, host: str) -> NetworkState:
        if self.store.get_network(net_id)["vdsm_name"] is None:
            raise _NoBridge(net_id)  # no DHCP port, no state: no agent serves it
        try:
            self.store.ensure_dhcp_port(net_id, host)
        except NetworkNotFound:
            raise
        except IpamError as exc:
            LOG.warning("No DHCP port for host %s on network %s: %s", host, net_id, exc.message)
        state = self.store.network_state(net_id)
        if state["network"]["vdsm_name"] is None:
            raise _NoBridge(net_id)
        device_id = dhcp_device_id(host)
        dhcp_subnets = {s["id"] for s in state["subnets"] if s["enable_dhcp"]}
        dhcp_port = next(
            (
                p
                for p in state["ports"]
                if p["device_owner"] == contracts.DHCP_OWNER
                and p["binding:host_id"] == host
                and p["device_id"] == device_id
            ),
            None,
        )
        return NetworkState(
            network=network_info(state["network"], self.store.dns),
            subnets=[subnet_state(s) for s in state["subnets"]],
            ports=[port_state(p) for p in state["ports"]],
            dhcp_port=port_state(dhcp_port) if dhcp_port and dhcp_subnets else None,
        )

    def _ack(self, env: Envelope, ack: PortAck) -> None:
        acked = {p.id: p.revision_number for p in ack.ports}
        recorded, activated = self.store.record_acks(ack.host, ack.network_id, acked)
        if self.on_acks is not None:
            self.on_acks()
        LOG.info(
            "Port acks from host %s on network %s: %d acknowledged, %d recorded, %d now ACTIVE",
            ack.host,
            ack.network_id,
            len(acked),
            recorded,
            len(activated),
        )

    def _leases(self, env: Envelope, batch: LeaseFacts) -> None:
        facts = [f.model_dump() for f in batch.facts]
        changed = self.store.record_leases(batch.host, batch.network_id, facts, batch.rebuilt)
        declined = sum(f.state == "declined" for f in batch.facts)
        if batch.unparsed:
            LOG.warning(
                "Lease facts from host %s on network %s: %d DHCP log line(s) not understood",
                batch.host,
                batch.network_id,
                batch.unparsed,
            )
        for fact in batch.facts:
            if fact.state == "declined":
                LOG.warning(
                    "Host %s network %s: client %s declined %s (address in use)",
                    batch.host,
                    batch.network_id,
                    fact.mac_address,
                    fact.ip_address,
                )
        LOG.debug(
            "Lease facts from host %s on network %s: %d fact(s), %d stored, rebuilt=%s",
            batch.host,
            batch.network_id,
            len(facts),
            changed,
            batch.rebuilt,
        )
        if self.on_leases is not None:
            self.on_leases(batch.network_id, declined, batch.unparsed)

    def _heartbeat(self, env: Envelope, hb: Heartbeat) -> None:
        self.store.agent_heartbeat(
            hb.host, [n.id for n in hb.networks], hb.model_dump(mode="json"), hb.started_at
        )
        LOG.debug("Heartbeat of host %s: %d network(s)", hb.host, len(hb.networks))

    def _release(self, env: Envelope, rel: NetworkRelease) -> None:
        gone = self.store.release_network(rel.host, rel.network_id)
        LOG.info(
            "Host %s released network %s (%d DHCP port(s) deleted)",
            rel.host,
            rel.network_id,
            len(gone),
        )
