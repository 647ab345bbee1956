"""Does a DHCP server's death cost running VMs anything? ``python -m bench.failover_continuity
[--vms 50] [--lease-time 120]`` (root; every part real, as in ``ovirt-ipam lab``).

A lab of 3 hosts and one network with HA count 1, so one host's dnsmasq serves it;
``--vms`` VMs on the two other hosts, half busybox udhcpc and half ISC dhclient,
each client kept running after its first lease as a VM's is. The lease time is 120 s,
not 60: dnsmasq raises any shorter lease to 120 s, its minimum, so 120 s is the
shortest lease a VM can really hold (T1, the unicast renew to its server, at 60 s;
T2, the broadcast rebind, at 90 s: the agent sends T2 early enough for dhclient,
see dhcp_driver.dnsmasq_config.REBIND_WINDOW).

Then the serving host is killed (its processes SIGKILLed, its uplinks down) and the
engine moves the network to another host. Every VM is watched (its eth0 looked at
every 0.5 s, its client's event log read) until each has renewed or rebound with a
live server, or its lease would have run out plus a margin (lease time + 20 s after
the kill). Then every VM's client is rebooted once (SIGKILL, eth0 bare, restarted:
dhclient from its lease file, INIT-REBOOT; udhcpc asking for its old address), 10 at
a time, and timed until bound.

By then the new server has answered every VM and holds their leases. So, last, the
new server is killed too, and right after the network has moved to the third host,
whose new dnsmasq holds none of their leases, the VMs on that host are rebooted the
same way: the case a dnsmasq that is not authoritative ignores (DESIGN.md).

Figures, last, as ``metric: value unit``:

- vms: VMs that held a lease from the killed host;
- vms_address_lost (and of them _udhcpc, _dhclient): VMs that at any moment after
  the kill lacked their address on eth0, or whose client logged deconfig, expire or nak;
- max_seconds_without_address: the longest time one VM was without it: the longer of
  what the looks at eth0 saw and what its client's events say (from the end of its
  lease, when the kernel drops the address, or a deconfig/expire, to its next lease);
- vms_answered_by_new_server: VMs whose renew or rebind a live server answered;
- reboot_after_failover_p50_ms, _p99_ms: reboot to lease (a VM with no lease after
  --reboot-timeout counts as that timeout); reboots_without_lease;
- failover_s: kill to the network served by another host (host_down_time 3 s);
- reboot_at_failover_p50_ms, _p99_ms (and reboots_at_failover_without_lease): the
  reboots right after the second failover.

Progress goes to stderr. The lab is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

from pyroute2 import netns

from bench._common import percentile
from ipam.lab.harness import free_port
from ipam.lab.lab import LEASE_TIME, Lab, UpOptions
from ipam.lab.netparts import rand
from ipam.lab.record import LabError

MARGIN_S = 20  # watched this long past the lease time after the kill


def _terminated(signum: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=50, help="VMs (default 50)")
    parser.add_argument(
        "--lease-time",
        type=int,
        default=LEASE_TIME,
        help=f"the agents' lease time, s (default {LEASE_TIME}, dnsmasq's minimum)",
    )
    parser.add_argument(
        "--reboot-timeout", type=float, default=60, help="seconds a rebooted VM is waited for"
    )
    args = parser.parse_args()
    if not 2 <= args.vms <= 500:
        parser.error("--vms must be between 2 and 500")
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGINT, _terminated)  # also when started with SIGINT ignored (&)

    began = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {msg}", file=sys.stderr, flush=True)

    name = f"f{rand(6)}"
    base = Path(tempfile.mkdtemp(prefix="bench-failover-", dir="/var/tmp"))
    lab = Lab(name, base, progress)
    figures: list[tuple[str, Any, str]] = []
    try:
        figures = _run(lab, args, progress)
    except LabError as exc:
        progress(f"failed: {exc}")
        return 1
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up is not interrupted
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lab.down()
        left = [n for n in netns.listnetns() if n.startswith(f"{name}-")]
        if left:
            progress(f"namespaces left behind: {', '.join(left)}")
        if base.exists() and not any(base.iterdir()):
            base.rmdir()
    for metric, value, unit in figures:
        shown = f"{value:.{1 if unit == 'ms' else 3}f}" if isinstance(value, float) else value
        print(f"{metric}: {shown} {unit}", flush=True)
    return 0


def _run(lab: Lab, args: argparse.Namespace, progress: Any) -> list[tuple[str, Any, str]]:
    st = lab.up(
        UpOptions(
            hosts=3,
            networks=1,
            ha=[1],
            vms=0,
            port=free_port(),
            client="both",
            lease_time=args.lease_time,
        )
    )
    net = st["networks"][0]
    [server] = net["serving_hosts"]
    others = [h["name"] for h in st["hosts"] if h["name"] != server]
    progress(f"{server} serves {net['name']}; booting {args.vms} VMs on {', '.join(others)}")
    groups = Counter(
        (others[i % len(others)], ("udhcpc", "dhclient")[(i // len(others)) % 2])
        for i in range(args.vms)
    )
    vms: list[dict[str, Any]] = []
    for (host, client), count in sorted(groups.items()):
        vms += lab.boot(net["name"], count, host, client)
    unleased = [v["name"] for v in vms if not v["leased_ip"]]
    if unleased:
        raise LabError(f"VMs without a lease before the kill: {', '.join(unleased)}")

    watch = args.lease_time + MARGIN_S
    progress(f"killing {server}; watching every VM for up to {watch} s")
    killed = lab.kill_host(server, watch=watch)
    followed = killed["vms"]
    if len(followed) != len(vms):
        progress(f"only {len(followed)} of {len(vms)} VMs held a lease from {server}")
    lost = [v for v in followed if not v["kept_address"]]
    for v in lost:
        events = ", ".join(f"{e['event']} +{e['after_kill_s']} s" for e in v["lost_events"])
        progress(
            f"{v['vm']} ({v['client']}) lost {v['ip']}: {events or 'seen without it'}, "
            f"{v['seconds_without_address']:.3f} s without it"
        )

    progress(f"rebooting every VM's DHCP client once ({len(vms)}, 10 at a time)")
    reboots = lab.reboot([v["name"] for v in vms], timeout=args.reboot_timeout, parallel=10)
    timed = [
        r["seconds"] * 1000 if r["seconds"] is not None else args.reboot_timeout * 1000
        for r in reboots
    ]
    failover = max(f["seconds"] for f in killed.get("failover", [{"seconds": float("nan")}]))

    [second] = killed["failover"][0]["served_by"]
    last = [v["name"] for v in vms if v["host"] != second]
    progress(
        f"killing {second} too, then rebooting the {len(last)} VMs on the third host right "
        "after the failover (its new dnsmasq holds none of their leases)"
    )
    lab.kill_host(second)
    at_failover = lab.reboot(last, timeout=args.reboot_timeout, parallel=10)
    timed_at = [
        r["seconds"] * 1000 if r["seconds"] is not None else args.reboot_timeout * 1000
        for r in at_failover
    ]
    return [
        ("vms", len(followed), "VMs"),
        ("vms_address_lost", len(lost), "VMs"),
        ("vms_address_lost_udhcpc", sum(v["client"] == "udhcpc" for v in lost), "VMs"),
        ("vms_address_lost_dhclient", sum(v["client"] == "dhclient" for v in lost), "VMs"),
        (
            "max_seconds_without_address",
            max((float(v["seconds_without_address"]) for v in followed), default=0.0),
            "s",
        ),
        ("vms_answered_by_new_server", sum(bool(v["answered_by"]) for v in followed), "VMs"),
        ("reboot_after_failover_p50_ms", percentile(timed, 0.5), "ms"),
        ("reboot_after_failover_p99_ms", percentile(timed, 0.99), "ms"),
        ("reboots_without_lease", sum(r["leased_ip"] is None for r in reboots), "VMs"),
        ("failover_s", float(failover), "s"),
        ("reboot_at_failover_p50_ms", percentile(timed_at, 0.5), "ms"),
        ("reboot_at_failover_p99_ms", percentile(timed_at, 0.99), "ms"),
        (
            "reboots_at_failover_without_lease",
            sum(r["leased_ip"] is None for r in at_failover),
            "VMs",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
