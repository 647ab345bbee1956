"""The DHCP manager end to end on one real host: the engine places networks on the
host from its heartbeats, calls Host.setDHCP over the bus, the host service starts
the agent, and a port created afterwards is ready for its VM's first DISCOVER;
lowering the HA count takes the DHCP servers away again."""

from __future__ import annotations

import pytest

from ipam.lab.netparts import Vm
from ipam.polling import wait_for
from tests.test_host_verb import HostWorld

pytestmark = pytest.mark.root

MANAGED = "[dhcp]\nmanage_placement = true\nstartup_grace = 0\nhost_down_time = 3\n"


def test_networks_are_placed_served_and_released(tmp_path, engine_factory) -> None:  # type: ignore[no-untyped-def]
    w = HostWorld(tmp_path, engine_factory(MANAGED))
    try:
        ids = [n["id"] for n in w.nets]
        wait_for(lambda: set(w.dnsmasq()) == set(ids), 30, "both networks served")

        def running(net_id: str) -> bool:
            agents = w.api.get(f"/v2.0/networks/{net_id}/dhcp-agents").json()["agents"]
            return [(a["host"], a["configurations"]["dnsmasq"].get(net_id)) for a in agents] == [
                (w.host, "running")
            ]

        wait_for(lambda: all(running(i) for i in ids), 15, "the engine to see both served")

        vm = Vm(w.bridges[0].name, "02:00:5e:77:00:01")
        try:
            client = vm.arm_udhcpc(tmp_path, tries=1, timeout=1)
            port = w.api.post(
                "/v2.0/ports",
                json={"port": {"network_id": ids[0], "mac_address": "02:00:5e:77:00:01"}},
            ).json()["port"]
            client.fire()
            assert port["status"] == "ACTIVE" and port["dhcp_ready_hosts"] == [w.host]
            lease = client.result()
            assert lease is not None and lease["ip"] == port["fixed_ips"][0]["ip_address"]
        finally:
            vm.remove()

        resp = w.api.put(f"/v2.0/networks/{ids[1]}", json={"network": {"ha_count": 0}})
        assert resp.status_code == 200
        wait_for(lambda: set(w.dnsmasq()) == {ids[0]}, 30, "network 1 no longer served")
        w.api.put(f"/v2.0/networks/{ids[0]}", json={"network": {"ha_count": 0}})
        wait_for(lambda: w.agent_pid() is None and not w.dnsmasq(), 30, "the agent stopped")
    finally:
        w.close()
