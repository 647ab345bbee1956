"""Ports that are ready when the VM starts: the race the project exists for.

Each VM sends a single DHCP DISCOVER right after its port's POST returns, as a VM
that boots at once. With ready_policy=any every VM gets its lease, also when the
agent is held up while its port is created. With none, the race is shown to be
real: with the agent held up (SIGSTOP) the POST returns at once and the VM's
DISCOVER goes unanswered. (The agents are woken by the bus at once, so on an idle
machine the entry usually wins that race anyway; holding the agent up stands for a
loaded broker or a busy agent, deterministically.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ipam.lab.netparts import Vm
from tests.agentlab import CIDR, World, ip_of

pytestmark = pytest.mark.root

RACES, THREADS = 200, 8


def _race(w: World, n: int = RACES) -> tuple[list[dict], list[str | None]]:
    ports: list[dict] = []
    leases: list[str | None] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        vm = Vm(w.bridge.name, f"02:00:5e:{k:02x}:00:00")
        w.vms.append(vm)
        with httpx.Client(base_url=w.engine.url, timeout=60) as api:
            for i in range(n // THREADS):
                mac = f"02:00:5e:{k:02x}:{i >> 8:02x}:{i & 255:02x}"
                vm.set_mac(mac)
                resp = api.post(
                    "/v2.0/ports",
                    json={
                        "port": {
                            "network_id": w.net_id,
                            "mac_address": mac,
                            "device_owner": "oVirt",
                        }
                    },
                )
                assert resp.status_code == 201, resp.text
                got = vm.udhcpc(w.tmp, tries=1, timeout=1)  # one DISCOVER, wait 1 s
                with lock:
                    ports.append(resp.json()["port"])
                    leases.append(got["ip"] if got else None)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ports, leases


STALL_S = 0.5  # the agent held up (SIGSTOP) this long around each port create


def _stalled_races(w: World, n: int) -> list[tuple[float, str | None, dict]]:
    """Ports created while the agent is held up for STALL_S (a loaded broker, a busy
    agent): its event cannot reach dnsmasq before the VM's DISCOVER, whatever the speed
    of the bus. (seconds the POST took, the lease of one DISCOVER sent at once, port)."""
    vm = Vm(w.bridge.name, "02:00:5e:7f:00:00")
    w.vms.append(vm)
    assert w.agent.proc is not None
    pid = w.agent.proc.pid
    out = []
    for i in range(n):
        mac = f"02:00:5e:7f:01:{i:02x}"
        vm.set_mac(mac)
        os.kill(pid, signal.SIGSTOP)
        resume = threading.Timer(STALL_S, os.kill, (pid, signal.SIGCONT))
        resume.start()
        try:
            start = time.monotonic()
            resp = w.api.post(
                "/v2.0/ports",
                json={
                    "port": {"network_id": w.net_id, "mac_address": mac, "device_owner": "oVirt"}
                },
            )
            took = time.monotonic() - start
            assert resp.status_code == 201, resp.text
            got = vm.udhcpc(w.tmp, tries=1, timeout=1)  # one DISCOVER, wait 1 s
        finally:
            resume.join()
            os.kill(pid, signal.SIGCONT)
        out.append((took, got["ip"] if got else None, resp.json()["port"]))
    return out


def _served(world_factory, policy: str) -> World:  # type: ignore[no-untyped-def]
    w = world_factory(
        engine_conf=f"[dhcp]\nready_policy = {policy}\nready_timeout = 10\n",
    )
    first = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(first)
    w.wait_serving()
    return w


@pytest.fixture(scope="module")
def served_any(tmp_path_factory: pytest.TempPathFactory, module_engine_factory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """One world served with ready_policy=any for the module's tests that use it: each
    works on ports and VMs of its own."""
    tmp = tmp_path_factory.mktemp("ready-any")
    made: list[World] = []

    def factory(engine_conf: str = "") -> World:
        engine = module_engine_factory(engine_conf, tmp=tmp)
        made.append(World(tmp, engine, f"filesystem://{tmp}/state/bus"))
        return made[-1]

    try:
        yield _served(factory, "any")
    finally:
        for w in made:
            w.close()


def test_with_ready_policy_any_every_vm_leases_on_its_first_discover(served_any: World) -> None:
    w = served_any
    ports, leases = _race(w)
    assert len(ports) == RACES
    not_ready = [
        (p["status"], p["dhcp_ready_hosts"], p.get("dhcp_status_reason"))
        for p in ports
        if p["status"] != "ACTIVE" or p["dhcp_ready_hosts"] != [w.agent.host]
    ]
    assert not_ready == []
    missed = [ip_of(p) for p, got in zip(ports, leases, strict=True) if got != ip_of(p)]
    assert missed == []
    # An agent held up while the port is created: the POST waits for it, and the VM
    # that starts the moment it returns leases on its first DISCOVER all the same.
    for took, got, port in _stalled_races(w, 3):
        assert took >= STALL_S * 0.9 and port["status"] == "ACTIVE"
        assert got == ip_of(port)


def test_with_ready_policy_none_the_race_is_real(world_factory) -> None:  # type: ignore[no-untyped-def]
    """Without waiting, a VM that starts while its DHCP entry is still on its way gets
    no answer: the POST returns at once, the DISCOVER is ignored, and the entry lands
    only afterwards (then the port is ACTIVE and a DISCOVER is answered)."""
    w = _served(world_factory, "none")
    races = _stalled_races(w, 3)
    for took, got, port in races:
        assert took < STALL_S  # not waited for
        assert got is None  # the VM's first DISCOVER went unanswered
        assert port["dhcp_status_reason"] == "Not waited for (ready_policy=none)"
        w.wait_active(port)
    vm = w.vms[-1]
    got = vm.udhcpc(w.tmp, tries=3, timeout=1)
    assert got is not None and got["ip"] == ip_of(races[-1][2])


def test_a_network_nobody_serves_answers_at_once_down_with_the_reason(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory(engine_conf="[dhcp]\nready_timeout = 25\n")
    start = time.monotonic()
    port = w.port()
    assert time.monotonic() - start < 5
    assert port["status"] == "DOWN" and port["dhcp_serving_hosts"] == []
    # No host service reports the bridge: no host can serve it, so no wait.
    assert "No live host carries bridge" in port["dhcp_status_reason"]


def test_an_ip_change_returns_once_served(served_any: World) -> None:
    w = served_any
    port = w.port(mac_address="02:00:5e:ff:00:01")
    vm = w.vm(port["mac_address"])
    new_ip = CIDR.replace("0/24", "250")
    moved = w.api.put(
        f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": new_ip}]}}
    ).json()["port"]
    assert moved["status"] == "ACTIVE" and ip_of(moved) == new_ip
    got = vm.udhcpc(w.tmp, tries=1, timeout=1)
    assert got is not None and got["ip"] == new_ip
