"""Ports that are ready, and failover: ``python -m bench.port_ready``.

A real engine (DHCP manager on, ready_policy=any, embedded defaults) and three
hosts as network namespaces (host service and DHCP agent inside each) carrying
one network with HA count 2, its bridges joined into one L2 segment.

- port_ready: wall time of ``POST /v2.0/ports`` until it returns ACTIVE (one
  serving dnsmasq has loaded the entry), one port at a time.
- failover: on a second network with HA count 1, the serving host's processes
  are killed; timed until a new VM on that network gets its lease (a fresh port,
  one DISCOVER per second): the manager must notice the host is down, move the
  placement and the new host's dnsmasq must serve. The host is then started again
  and the next round waits until both networks are served.

Figures come last as ``metric: value unit``. Everything started is ended by pid
and every namespace and link removed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ipam.lab.harness import EngineProcess
from ipam.lab.lab import serving_hosts
from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, Vm, rand
from ipam.polling import wait_for

DOWN = 3.0


def progress(msg: str) -> None:
    print(f"# {msg}", flush=True)


def serving(api: httpx.Client, net_id: str) -> list[str]:
    """Live hosts whose dnsmasq for the network runs, as the engine reports them."""
    return serving_hosts(api).get(net_id, [])


def lease_after_failover(
    tmp: Path, api: httpx.Client, net_id: str, segment: str, deadline: float
) -> bool:
    mac = f"02:00:5f:{rand(2)}:{rand(2)}:{rand(2)}"
    vm = Vm(segment, mac)
    try:
        port = api.post(
            "/v2.0/ports", json={"port": {"network_id": net_id, "mac_address": mac}}
        ).json()["port"]
        while time.monotonic() < deadline:
            got = vm.udhcpc(tmp, tries=1, timeout=1)
            if got and got["ip"] == port["fixed_ips"][0]["ip_address"]:
                return True
        return False
    finally:
        vm.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--failovers", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-port-ready-", dir="/var/tmp"))
    engine = EngineProcess(tmp, f"[dhcp]\nstartup_grace = 0\nhost_down_time = {DOWN}\n")
    engine.start().wait_up()
    api = httpx.Client(base_url=engine.url, timeout=60)
    segment, segment1 = Bridge(), Bridge()
    hosts: list[LabHost] = []
    try:
        vdsm, vdsm1 = f"vn{rand(6)}", f"vo{rand(6)}"
        net = api.post("/v2.0/networks", json={"network": {"name": vdsm, "ha_count": 2}}).json()[
            "network"
        ]
        api.post(
            "/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.91.0.0/16"}}
        )
        # Failover is timed on a network with one DHCP server: its placement must move.
        single = api.post("/v2.0/networks", json={"network": {"name": vdsm1}}).json()["network"]
        api.post(
            "/v2.0/subnets", json={"subnet": {"network_id": single["id"], "cidr": "10.92.0.0/16"}}
        )
        bus = f"filesystem://{tmp}/state/bus"
        hosts = [
            LabHost(tmp, f"b{rand(4)}", bus, {vdsm: segment.name, vdsm1: segment1.name})
            for _ in range(3)
        ]
        wait_for(
            lambda: len(serving(api, net["id"])) == 2 and len(serving(api, single["id"])) == 1,
            60,
            "the networks served",
        )
        progress(f"network {net['id']} served by {', '.join(serving(api, net['id']))}")

        latencies = []
        for i in range(args.ports):
            start = time.monotonic()
            port = api.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()
            latencies.append((time.monotonic() - start) * 1000)
            assert port["port"]["status"] == "ACTIVE", port
            if (i + 1) % 50 == 0:
                progress(f"{i + 1} ports created")
        latencies.sort()

        failovers = []
        for round_ in range(args.failovers):
            victim = next(h for h in hosts if h.name == serving(api, single["id"])[0])
            victim.kill()
            killed = time.monotonic()
            ok = lease_after_failover(tmp, api, single["id"], segment1.name, killed + DOWN + 30)
            took = time.monotonic() - killed
            progress(
                f"failover {round_ + 1}: host {victim.name} killed, a new VM leased after "
                f"{took:.2f}s"
                if ok
                else f"failover {round_ + 1}: no lease in {took:.1f}s"
            )
            failovers.append(took if ok else float("nan"))
            victim.start()
            wait_for(
                lambda: len(serving(api, net["id"])) == 2 and len(serving(api, single["id"])) == 1,
                60,
                "served again",
            )

        print(f"port_ready_p50_ms: {latencies[len(latencies) // 2]:.2f} ms")
        print(f"port_ready_p99_ms: {latencies[int(len(latencies) * 0.99) - 1]:.2f} ms")
        print(f"failover_s_median: {statistics.median(failovers):.2f} s")
        print(f"failover_s_max: {max(failovers):.2f} s")
        print(f"host_down_time_s: {DOWN:.1f} s")
        return 0
    finally:
        for host in hosts:
            host.close()
        segment.remove()
        segment1.remove()
        api.close()
        engine.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
