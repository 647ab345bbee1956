"""A one-host DHCP world for tests: a real engine process, a real agent process on
a bridge (both ipam.lab.harness), VMs as namespaces running busybox udhcpc (shared by
the agent and the readiness tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dhcp_driver.mapping import write_mapping
from ipam.bus import contracts
from ipam.bus.messaging import Bus
from ipam.lab.harness import AgentProcess
from ipam.lab.netparts import Bridge, Vm, rand
from ipam.polling import wait_for

CIDR = "10.66.0.0/24"
#: The test agent's [dhcp_agent] options, before the test's own.
AGENT_OPTIONS = "lease_time = 120\nheartbeat_interval = 0.5\nconfirm_timeout = 5\n"


def make_agent(
    tmp: Path, transport_url: str, host: str, mapping: Path, prefix: str, extra_conf: str = ""
) -> AgentProcess:
    """An agent (not started) with tmp/agent-HOST.conf, state in tmp/agent-HOST/ and
    its output in tmp/agent-HOST.log."""
    return AgentProcess(
        tmp / f"agent-{host}.conf",
        tmp / f"agent-{host}",
        tmp / f"agent-{host}.log",
        transport_url,
        host,
        mapping,
        prefix,
        AGENT_OPTIONS + extra_conf,
    )


class World:
    def __init__(self, tmp: Path, engine, transport_url: str, agent_conf: str = "") -> None:  # type: ignore[no-untyped-def]
        self.tmp, self.engine, self.transport_url = tmp, engine, transport_url
        self.api = httpx.Client(base_url=engine.url, timeout=30)
        self.bridge = Bridge()
        self.mapping = tmp / "mapping.json"
        self.agent = make_agent(
            tmp, transport_url, f"h{rand()}", self.mapping, f"t-{rand()}-", agent_conf
        )
        self.vms: list[Vm] = []
        net = self.post("networks", {"name": self.bridge.name, "ha_count": 1})
        self.net_id = net["id"]
        self.subnet = self.post(
            "subnets", {"network_id": self.net_id, "cidr": CIDR, "dns_nameservers": ["10.66.0.53"]}
        )

    def post(self, kind: str, body: dict) -> dict:
        member = kind[:-1]
        resp = self.api.post(f"/v2.0/{kind}", json={member: body})
        assert resp.status_code == 201, resp.text
        return resp.json()[member]

    def port(self, **attrs) -> dict:  # type: ignore[no-untyped-def]
        return self.post("ports", {"network_id": self.net_id, "device_owner": "oVirt", **attrs})

    def status(self, port_id: str) -> str:
        return self.api.get(f"/v2.0/ports/{port_id}").json()["port"]["status"]

    def wait_active(self, port: dict, timeout: float = 15) -> None:
        wait_for(
            lambda: self.status(port["id"]) == "ACTIVE",
            timeout,
            f"port {port['id']} acknowledged\n{self.agent.logs()[-3000:]}",
            interval=0.05,
        )

    def wait_serving(self, timeout: float = 15) -> None:
        """Until the engine counts this host's dnsmasq for the network as running."""

        def running() -> bool:
            resp = self.api.get(f"/v2.0/networks/{self.net_id}/dhcp-agents")
            return any(
                a["host"] == self.agent.host
                and a["alive"]
                and a["configurations"]["dnsmasq"].get(self.net_id) == "running"
                for a in resp.json()["agents"]
            )

        wait_for(running, timeout, "the engine to count the host as serving")

    def serve(self) -> None:
        write_mapping(self.mapping, [{"name": self.bridge.name, "id": self.net_id}])

    def vm(self, mac: str) -> Vm:
        vm = Vm(self.bridge.name, mac)
        self.vms.append(vm)
        return vm

    def lease(self, port: dict, tries: int = 3) -> str | None:
        got = self.vm(port["mac_address"]).udhcpc(self.tmp, tries=tries, timeout=1)
        return got["ip"] if got else None

    def close(self) -> None:
        self.agent.stop()
        if self.transport_url.startswith("amqp"):
            from ipam.bus import contracts
            from ipam.bus.messaging import Bus

            bus = Bus(self.transport_url)
            for queue in (
                contracts.agent_queue(self.agent.host),
                contracts.reply_queue(self.agent.host),
            ):
                bus.delete_queue(queue)
            bus.close()
        for vm in self.vms:
            vm.remove()
        for pid in self.agent.dnsmasq_pids():  # ended by pid: ours, by state directory
            os.kill(pid, signal.SIGTERM)
        from dhcp_driver.interface import OvirtInterfaceDriver

        OvirtInterfaceDriver(str(self.mapping), self.agent.prefix).cleanup_stale(set())
        self.bridge.remove()
        self.api.close()


def ip_of(port: dict) -> str:
    return port["fixed_ips"][0]["ip_address"]


@pytest.fixture
def world_factory(tmp_path: Path, engine_factory) -> Iterator[Callable[..., World]]:  # type: ignore[no-untyped-def]
    made: list[World] = []

    def make(
        transport_url: str | None = None, engine_conf: str = "", agent_conf: str = ""
    ) -> World:
        if transport_url is None:
            engine = engine_factory(engine_conf)
            url = f"filesystem://{tmp_path}/state/bus"
        else:
            engine = engine_factory(f"{engine_conf}[DEFAULT]\ntransport_url = {transport_url}\n")
            url = transport_url
        world = World(tmp_path, engine, url, agent_conf)
        made.append(world)
        return world

    yield make
    for world in made:
        world.close()


@contextlib.contextmanager
def host_heartbeats(url: str) -> Iterator[list[tuple[float, list[str]]]]:
    """The host heartbeats that reach the engine's queue on this bus, as they come:
    (time.monotonic() on arrival, the bridges reported)."""
    bus, stop, beats = Bus(url), threading.Event(), []

    def on_message(env: contracts.Envelope, body: object) -> None:
        if env.type == "host.heartbeat":
            beats.append((time.monotonic(), list(body.bridges)))  # type: ignore[attr-defined]

    consumer = threading.Thread(
        target=bus.consume, args=(contracts.ENGINE_QUEUE, on_message, stop), daemon=True
    )
    consumer.start()
    try:
        yield beats
    finally:
        stop.set()
        consumer.join(5)
        bus.close()


def reported_at(beats: list[tuple[float, list[str]]], bridge: str, timeout: float = 5) -> float:
    """When the first heartbeat naming ``bridge`` arrived."""
    return wait_for(
        lambda: next((t for t, b in beats if bridge in b), None), timeout, f"{bridge} reported"
    )
