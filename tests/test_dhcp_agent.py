"""The DHCP agent end to end, with every part real: an engine process, an agent
process, the bus (filesystem and RabbitMQ), the interface driver's namespaces on a
bridge, dnsmasq, and VMs running busybox udhcpc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from dhcp_driver.mapping import write_mapping
from ipam.polling import wait_for
from tests.netlab import Bridge, Vm, rand

CIDR = "10.66.0.0/24"


class AgentProcess:
    def __init__(self, tmp: Path, transport_url: str, host: str, mapping: Path, prefix: str):
        self.tmp, self.host, self.prefix = tmp, host, prefix
        self.conf = tmp / f"agent-{host}.conf"
        self.conf.write_text(
            f"[DEFAULT]\nstate_path = {tmp}/agent-{host}\ntransport_url = {transport_url}\n"
            f"[dhcp_agent]\nhost = {host}\nmapping_file = {mapping}\n"
            f"namespace_prefix = {prefix}\nlease_time = 120\nheartbeat_interval = 0.5\n"
            "confirm_timeout = 5\n")
        self.logfile = tmp / f"agent-{host}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.logfile, "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipam.cli.main", "dhcp-agent", "--config-file", str(self.conf)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def dnsmasq_pids(self) -> list[int]:
        """dnsmasq processes serving this agent's state directory."""
        marker = f"{self.tmp}/agent-{self.host}/dhcp/"
        pids = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "dnsmasq" and any(marker in a for a in proc.info["cmdline"]
                                                      or []):
                pids.append(proc.pid)
        return pids


class World:
    def __init__(self, tmp: Path, engine, transport_url: str) -> None:  # type: ignore[no-untyped-def]
        self.tmp, self.engine, self.transport_url = tmp, engine, transport_url
        self.api = httpx.Client(base_url=engine.url, timeout=30)
        self.bridge = Bridge()
        self.mapping = tmp / "mapping.json"
        self.agent = AgentProcess(tmp, transport_url, f"h{rand()}", self.mapping, f"t-{rand()}-")
        self.vms: list[Vm] = []
        net = self.post("networks", {"name": self.bridge.name, "ha_count": 1})
        self.net_id = net["id"]
        self.subnet = self.post("subnets", {"network_id": self.net_id, "cidr": CIDR,
                                            "dns_nameservers": ["10.66.0.53"]})

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
            from ipam import contracts
            from ipam.messaging import Bus

            bus = Bus(self.transport_url)
            for queue in (contracts.agent_queue(self.agent.host),
                          contracts.reply_queue(self.agent.host)):
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


def _ip(port: dict) -> str:
    return port["fixed_ips"][0]["ip_address"]


@pytest.fixture
def world_factory(tmp_path: Path, engine_factory) -> Iterator[Callable[..., World]]:  # type: ignore[no-untyped-def]
    made: list[World] = []

    def make(transport_url: str | None = None) -> World:
        if transport_url is None:
            engine = engine_factory()
            url = f"filesystem://{tmp_path}/state/bus"
        else:
            engine = engine_factory(f"[DEFAULT]\ntransport_url = {transport_url}\n")
            url = transport_url
        world = World(tmp_path, engine, url)
        made.append(world)
        return world

    yield make
    for world in made:
        world.close()


def test_agent_serves_creates_deletes_reuse_and_ip_change(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory()
    first = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(first)
    assert w.lease(first) == _ip(first)

    second = w.port(mac_address="02:00:00:66:00:02")
    w.wait_active(second)
    assert w.lease(second) == _ip(second)

    assert w.api.delete(f"/v2.0/ports/{second['id']}").status_code == 204
    gone_vm = w.vms[-1]
    wait_for(
        lambda: gone_vm.udhcpc(w.tmp, tries=1, timeout=1) is None,
        10,
        "the deleted port's MAC refused",
    )

    reuse = w.port(mac_address="02:00:00:66:00:03", fixed_ips=[{"ip_address": _ip(second)}])
    w.wait_active(reuse)
    assert w.lease(reuse) == _ip(second)

    moved = w.api.put(
        f"/v2.0/ports/{first['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.66.0.200"}]}}
    ).json()["port"]
    wait_for(lambda: w.lease(moved, tries=1) == "10.66.0.200", 10, "the new IP served")
    assert "Traceback" not in w.agent.logs()


def test_unmapped_network_or_missing_bridge_gets_no_dhcp(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory()
    port = w.port()
    write_mapping(w.mapping, [])
    w.agent.start()
    wait_for(lambda: "DHCP agent starting" in w.agent.logs(), 15, "agent start")
    other = w.post("networks", {"name": "nobridge", "vdsm_name": f"nb{rand()}"})
    write_mapping(w.mapping, [{"name": other["vdsm_name"], "id": other["id"]}])
    port2 = w.port()
    w.api.put(f"/v2.0/ports/{port2['id']}", json={"port": {"name": "x"}})
    assert w.lease(port, tries=1) is None
    assert w.status(port["id"]) == "DOWN"
    assert w.agent.dnsmasq_pids() == []
    from dhcp_driver.interface import OvirtInterfaceDriver

    assert OvirtInterfaceDriver(str(w.mapping), w.agent.prefix).plugged_networks() == set()


def test_agent_restart_keeps_dnsmasq_and_dhcp_answers_meanwhile(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory()
    port = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(port)
    pids = w.agent.dnsmasq_pids()
    assert len(pids) == 1
    w.agent.stop(signal.SIGKILL)
    assert w.lease(port) == _ip(port)  # renewal while no agent runs
    w.agent.start()
    late = w.port()
    w.wait_active(late)
    assert w.agent.dnsmasq_pids() == pids  # adopted, not restarted
    assert w.lease(late) == _ip(late)


def test_killed_dnsmasq_is_respawned_within_two_seconds(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory()
    port = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(port)
    [pid] = w.agent.dnsmasq_pids()
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: [p for p in w.agent.dnsmasq_pids() if p != pid], 2, "dnsmasq respawned")
    assert new and w.lease(port) == _ip(port)


def test_rabbitmq_transport(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory("amqp://guest:guest@127.0.0.1:5672//")
    port = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(port)
    assert w.lease(port) == _ip(port)
    late = w.port()
    w.wait_active(late)
    assert w.lease(late) == _ip(late)
