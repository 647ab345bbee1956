"""The lab as a whole, timed: ``python -m bench.lab [--hosts 3] [--networks 4] [--vms 100]``.

Runs ``ovirt-ipam lab`` in-process (every part real: namespaces, engine, host
services, agents, dnsmasq, udhcpc) under a throw-away name and directory, then:

- up_s: ``lab up`` from nothing to every VM leased;
- lease: per VM, from the port create's return to the client's lease (ms), and how
  many VMs leased exactly their allocated IP on their first DISCOVER;
- port_create: the POST that waits for a serving dnsmasq to load the port (ms);
- idle_cpu_percent: all the lab's processes (engine, host services, agents, dnsmasq,
  the VMs' DHCP clients: every process whose command line names the lab's
  directory) over ``--idle-s`` seconds with nothing happening, in percent of one
  core, from /proc (psutil), the share of each kind in the progress lines;
  idle_wakeups_per_s: how often they were woken in that window, and
  wakeup_cost_ms: what one wake-up of a sleeping thread costs on this machine then
  (idle CPU is wake-ups times that, mostly);
- lease_visible_ms: for ``--lease-samples`` VMs one after another, ``lab vm reboot``
  (a fresh DISCOVER/REQUEST/ACK), from the client's ACK (its lease event) until the
  engine's API shows the new lease on the VM's port (``dhcp_lease.last_seen``):
  dnsmasq's log line, the agent's batch, the bus and the store;
- failover_s: ``lab host kill`` of the host serving the most networks, until every
  network it served runs on another host (host_down_time 3 s);
- down_s: ``lab down``, which must leave no namespace of the lab.

Figures come last as ``metric: value unit``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from pyroute2 import netns

from ipam.lab.harness import free_port
from ipam.lab.lab import Lab, UpOptions
from ipam.lab.netparts import rand
from ipam.polling import wait_for


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lab_processes(base: Path) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(base) in arg for arg in proc.info["cmdline"] or []):
            out.append(proc)
    return out


def _cpu_and_runs(proc: psutil.Process) -> tuple[float, int]:
    """CPU time proc has used and how many times its threads were put on a CPU (each
    wake-up is one): sums over /proc/PID/task/*/schedstat (run time in nanoseconds,
    then wait time, then timeslices; utime and stime count 10 ms ticks, too coarse
    for processes that use a few milliseconds a second). Without schedstat: psutil's
    user + system and its context switches."""
    task_dir = f"/proc/{proc.pid}/task"
    try:
        total, runs = 0, 0
        for tid in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{tid}/schedstat") as f:
                    fields = f.read().split()
                total, runs = total + int(fields[0]), runs + int(fields[2])
            except (FileNotFoundError, ProcessLookupError):  # the thread ended
                continue
        return total / 1e9, runs
    except (OSError, ValueError, IndexError):
        t, switches = proc.cpu_times(), proc.num_ctx_switches()
        return float(t.user + t.system), switches.voluntary + switches.involuntary


def wakeup_cost(seconds: float = 2.0) -> float:
    """Seconds of CPU one wake-up of a sleeping Python thread costs on this machine
    now: a thread of ours sleeps 0.1 s at a time. On a quiet VM whose vCPUs halt this
    is 0.1-0.4 ms (tens of times a bare-metal figure), so an idle process's CPU share
    says more about the machine than about the process; wake-ups do not."""
    done = threading.Event()
    spent: list[float] = []

    def sleeper() -> None:
        start, n = time.thread_time(), 0
        while not done.wait(0.1):
            n += 1
        spent.append((time.thread_time() - start) / max(n, 1))

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    time.sleep(seconds)  # the measurement window itself, not a synchronisation
    done.set()
    thread.join()
    return spent[0]


def process_kind(proc: psutil.Process) -> str:
    """What a lab process is, from its command line (its kind in idle_cpu's shares)."""
    cmd = " ".join(proc.info["cmdline"] or [])
    for word in ("dnsmasq", "dhcp-agent", "host ", "engine", "udhcpc", "dhclient"):
        if word in cmd:
            return word.strip()
    return "other"


def idle_cpu(base: Path, seconds: float) -> tuple[float, dict[str, float], float]:
    """Percent of one core the lab's processes (every process whose command line names
    ``base``) used over ``seconds``, from /proc, by kind (process_kind), and their
    wake-ups per second."""
    before = {}
    for proc in lab_processes(base):
        with contextlib.suppress(psutil.Error, OSError):
            before[proc.pid] = (proc, _cpu_and_runs(proc))
    time.sleep(seconds)  # the measurement window itself, not a synchronisation
    total, by_kind, wakeups = 0.0, dict[str, float](), 0
    for proc, (used, runs) in before.values():
        with contextlib.suppress(psutil.Error, OSError):
            now_used, now_runs = _cpu_and_runs(proc)
            share = max(0.0, now_used - used) / seconds * 100
            total += share
            wakeups += max(0, now_runs - runs)
            by_kind[process_kind(proc)] = by_kind.get(process_kind(proc), 0.0) + share
    return total, by_kind, wakeups / seconds


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def lease_visibility(lab: Lab, vms: list[dict[str, Any]]) -> list[float]:
    """ms from each rebooted VM's ACK until its port shows that lease (see the doc)."""
    out = []
    with httpx.Client(base_url=lab.rec["api_url"], timeout=10) as api:
        for vm in vms:
            started = time.time()
            (res,) = lab.reboot([vm["name"]])
            if res["seconds"] is None:
                continue
            acked = started + res["seconds"]

            def shown(port_id: str = vm["port_id"], since: float = started) -> float | None:
                lease = api.get(f"/v2.0/ports/{port_id}").json()["port"]["dhcp_lease"]
                if lease and lease["state"] == "bound" and _epoch(lease["last_seen"]) >= since:
                    return time.time()
                return None

            seen = wait_for(shown, 10, f"the lease of {vm['name']} on its port", interval=0.002)
            out.append(max(0.0, (seen - acked) * 1000))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--networks", type=int, default=4)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle window (s)")
    parser.add_argument("--lease-samples", type=int, default=30, help="VMs rebooted, one by one")
    args = parser.parse_args()
    name = f"b{rand(6)}"
    base = Path(tempfile.mkdtemp(prefix="bench-lab-", dir="/var/tmp"))
    shown = [0]

    def progress(msg: str) -> None:
        if msg.startswith("[") and shown[0] % 20:  # every 20th VM line
            shown[0] += 1
            return
        shown[0] += msg.startswith("[")
        print(f"# {msg}", flush=True)

    lab = Lab(name, base, progress)
    figures: list[tuple[str, float, str]] = []
    try:
        start = time.monotonic()
        st = lab.up(
            UpOptions(
                hosts=args.hosts,
                networks=args.networks,
                vms=args.vms,
                ha=[2, 1],
                port=free_port(),
            )
        )
        figures.append(("up_s", time.monotonic() - start, "s"))
        vms = st["vms"]
        leases = [v["time_to_lease_s"] * 1000 for v in vms if v["time_to_lease_s"] is not None]
        creates = [v["port_create_ms"] for v in vms]
        exact = sum(v["leased_ip"] == v["allocated_ip"] and v["first_try"] for v in vms)
        figures += [
            ("vms", len(vms), "VMs"),
            ("vms_exact_first_discover", exact, "VMs"),
            ("lease_p50_ms", statistics.median(leases), "ms"),
            ("lease_p99_ms", _pct(leases, 0.99), "ms"),
            ("port_create_p50_ms", statistics.median(creates), "ms"),
            ("port_create_p99_ms", _pct(creates, 0.99), "ms"),
        ]
        time.sleep(3)  # let the boot's last renewals and heartbeats pass
        idle, by_kind, wakeups = idle_cpu(base, args.idle_s)
        cost = wakeup_cost()
        progress(
            f"idle over {args.idle_s:.0f}s: "
            + ", ".join(f"{k} {v:.2f}%" for k, v in sorted(by_kind.items()))
            + f"; a wake-up costs {cost * 1e3:.3f} ms of CPU on this machine now"
        )
        figures += [
            ("idle_cpu_percent", idle, "% of a core"),
            ("idle_wakeups_per_s", wakeups, "wake-ups/s"),
            ("wakeup_cost_ms", cost * 1e3, "ms"),
        ]
        visible = lease_visibility(lab, vms[: args.lease_samples])
        progress(
            f"lease visible on the port after the ACK: {len(visible)} samples, "
            f"max {max(visible):.1f} ms"
        )
        figures += [
            ("lease_visible_p50_ms", statistics.median(visible), "ms"),
            ("lease_visible_p99_ms", _pct(visible, 0.99), "ms"),
        ]
        victim = max(st["hosts"], key=lambda h: len(h["serves"]))
        killed = lab.kill_host(victim["name"])
        figures.append(
            ("failover_s_max", max(f["seconds"] for f in killed.get("failover", [])) or 0, "s")
        )
        figures.append(("failover_networks", len(killed.get("failover", [])), "networks"))
    finally:
        start = time.monotonic()
        lab.down()
        figures.append(("down_s", time.monotonic() - start, "s"))
        left = [n for n in netns.listnetns() if n.startswith(f"{name}-")]
        figures.append(("namespaces_left", len(left), "namespaces"))
    for metric, value, unit in figures:
        print(
            f"{metric}: {value:.2f} {unit}"
            if isinstance(value, float)
            else f"{metric}: {value} {unit}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
