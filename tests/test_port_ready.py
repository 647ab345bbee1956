"""Ports that are ready when the VM starts: the race the project exists for.

Each VM sends a single DHCP DISCOVER right after its port's POST returns: its MAC
is set and its client started (blocked on a pipe) before the POST, so the DISCOVER
leaves about a millisecond after the answer, as for a VM that boots at once. With ready_policy=any
every VM gets its lease; with none, the race is shown to be real.
"""

from __future__ import annotations

import threading
import time

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


# A slower bus (100 ms polling, as a loaded broker): the event reaches the agent
# after the VM's first DISCOVER. With the default 10 ms (or less), this agent loads
# the entry before even a DISCOVER sent the instant the POST returns.
SLOW_BUS = "[bus]\npolling_interval = 0.1\n"


def _served(world_factory, policy: str) -> World:  # type: ignore[no-untyped-def]
    w = world_factory(
        engine_conf=f"[dhcp]\nready_policy = {policy}\nready_timeout = 10\n" + SLOW_BUS,
        agent_conf=SLOW_BUS,
    )
    first = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(first)
    w.wait_serving()
    return w


def test_with_ready_policy_any_every_vm_leases_on_its_first_discover(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = _served(world_factory, "any")
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


def test_with_ready_policy_none_the_race_is_real(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = _served(world_factory, "none")
    ports, leases = _race(w)
    failed = sum(1 for p, got in zip(ports, leases, strict=True) if got != ip_of(p))
    print(f"ready_policy=none: {failed} of {RACES} VMs got no lease on their first DISCOVER")
    assert failed > 0  # without waiting, VMs do start before their DHCP entry exists
    assert all(got in (None, ip_of(p)) for p, got in zip(ports, leases, strict=True))


def test_a_network_nobody_serves_answers_at_once_down_with_the_reason(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory(engine_conf="[dhcp]\nready_timeout = 25\n")
    start = time.monotonic()
    port = w.port()
    assert time.monotonic() - start < 5
    assert port["status"] == "DOWN" and port["dhcp_serving_hosts"] == []
    # No host service reports the bridge: no host can serve it, so no wait.
    assert "No live host carries bridge" in port["dhcp_status_reason"]


def test_an_ip_change_returns_once_served(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = _served(world_factory, "any")
    port = w.port(mac_address="02:00:5e:ff:00:01")
    vm = w.vm(port["mac_address"])
    new_ip = CIDR.replace("0/24", "250")
    moved = w.api.put(
        f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": new_ip}]}}
    ).json()["port"]
    assert moved["status"] == "ACTIVE" and ip_of(moved) == new_ip
    got = vm.udhcpc(w.tmp, tries=1, timeout=1)
    assert got is not None and got["ip"] == new_ip
