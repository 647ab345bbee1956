"""A host whose host service hangs (SIGSTOP) while the DHCP manager calls it delays no
other host's failover (issue 18): the lab in-process, every part real."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from ipam.lab.harness import free_port
from ipam.lab.lab import HOST_DOWN_TIME, Lab, UpOptions, serving_hosts
from ipam.lab.netparts import rand
from ipam.polling import wait_for

pytestmark = pytest.mark.root


def test_a_hung_host_service_delays_no_other_failover(tmp_path: Path) -> None:
    lab = Lab(f"h{rand(5)}", tmp_path, lambda msg: None)
    stopped: int | None = None
    try:
        st = lab.up(UpOptions(hosts=3, networks=2, vms=0, ha=[1, 1], port=free_port()))
        net_a, net_b = st["networks"]
        [victim] = net_b["serving_hosts"]
        others = sorted(h["name"] for h in st["hosts"] if h["name"] != victim)
        # The hung host must be the one a second server for net_a goes to: the least
        # loaded (ties by name) of the hosts not serving net_a already.
        [server_a] = net_a["serving_hosts"]
        hung = others[0] if server_a == victim else next(h for h in others if h != server_a)
        [keeper] = [h for h in others if h != hung]
        with httpx.Client(base_url=st["api_url"], timeout=30) as api:
            stopped = next(h["service_pid"] for h in lab.rec["hosts"] if h["name"] == hung)
            assert stopped
            os.kill(stopped, signal.SIGSTOP)  # hung: it answers no call
            # A second server for net_a goes to the least loaded host: the hung one,
            # whose Host.setDHCP call then hangs until its deadline (30 s).
            resp = api.put(f"/v2.0/networks/{net_a['id']}", json={"network": {"ha_count": 2}})
            assert resp.status_code == 200, resp.text
            lab.kill_host(victim, wait=False)
            killed = time.monotonic()
            wait_for(
                lambda: serving_hosts(api).get(net_b["id"]) == [keeper],
                HOST_DOWN_TIME + 10,
                "the killed host's network moved",
                interval=0.05,
            )
            took = time.monotonic() - killed
            print(f"the killed host's network served again {took:.2f}s after the kill")
            assert took <= HOST_DOWN_TIME + 3
            # Its placements moved: net_a is served by the keeper, the hung host serves
            # nothing (it never took its Host.setDHCP).
            wait_for(
                lambda: serving_hosts(api).get(net_a["id"]) == [keeper],
                HOST_DOWN_TIME + 3,
                "net_a on the keeper",
            )
            assert all(hung not in hosts for hosts in serving_hosts(api).values())
    except BaseException:
        for path in [lab.dir / "engine.log", *sorted(lab.dir.glob("hosts/*/*.log"))]:
            log = path.read_text().splitlines()
            print(f"== {path}")
            print("\n".join(x for x in log if "ipam.api.access" not in x)[-5000:])
        raise
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        lab.down()
