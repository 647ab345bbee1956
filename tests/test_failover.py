"""Placement and failover across hosts (DESIGN.md flows 1 and 5): three hosts as
namespaces carrying one network with HA count 2, every process real."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from pyroute2 import netns

from ipam.lab.harness import database_conf, db_upgrade
from ipam.lab.lab import serving_hosts
from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, Vm, rand
from ipam.polling import wait_for
from tests.dhcpclients import RunningClient
from tests.faultlab import check_nothing_lost, record

pytestmark = pytest.mark.root

DOWN = 3.0
MANAGED = (
    f"[dhcp]\nmanage_placement = true\nstartup_grace = 0\nhost_down_time = {DOWN}\n"
    "ready_timeout = 15\n"
)


def _serving(api: httpx.Client, net_id: str) -> list[str]:
    """Live hosts whose dnsmasq for the network runs, as the engine reports them."""
    return serving_hosts(api).get(net_id, [])


def _lease(tmp: Path, api: httpx.Client, net_id: str, segment: str) -> tuple[dict, str | None]:
    mac = f"02:00:5e:{rand(2)}:{rand(2)}:{rand(2)}"
    vm = Vm(segment, mac)
    try:
        client = vm.arm_udhcpc(tmp, tries=1, timeout=1)
        port = api.post(
            "/v2.0/ports", json={"port": {"network_id": net_id, "mac_address": mac}}
        ).json()["port"]
        client.fire()
        got = client.result()
        return port, got["ip"] if got else None
    finally:
        vm.remove()


@contextlib.contextmanager
def _cluster(
    tmp: Path,
    engine,
    cidr: str,
    hosts: int,
    ha_count: int = 1,
    bus: str | None = None,
) -> Iterator[SimpleNamespace]:
    """A network (bridges joined into one segment) carried by ``hosts`` lab hosts."""
    api = httpx.Client(base_url=engine.url, timeout=60)
    vdsm, segment, lab = f"vn{rand(6)}", Bridge(), []
    try:
        net = api.post(
            "/v2.0/networks", json={"network": {"name": vdsm, "ha_count": ha_count}}
        ).json()["network"]
        api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": cidr}})
        bus = bus or f"filesystem://{tmp}/state/bus"
        lab.extend(LabHost(tmp, f"h{rand(4)}", bus, {vdsm: segment.name}) for _ in range(hosts))
        yield SimpleNamespace(api=api, net=net, vdsm=vdsm, segment=segment, hosts=lab)
    finally:
        for host in lab:
            host.close()
        segment.remove()
        api.close()


def test_ha_two_of_three_failover_and_ha_change(tmp_path: Path, engine_factory) -> None:  # type: ignore[no-untyped-def]
    with _cluster(tmp_path, engine_factory(MANAGED), "10.88.0.0/24", 3, ha_count=2) as c:
        net_id = c.net["id"]
        two = wait_for(
            lambda: len(s := _serving(c.api, net_id)) == 2 and s, 40, "two hosts serving"
        )
        port, ip = _lease(tmp_path, c.api, net_id, c.segment.name)
        assert port["status"] == "ACTIVE" and ip == port["fixed_ips"][0]["ip_address"]

        victim = next(h for h in c.hosts if h.name == two[0])
        victim.kill()
        killed = time.monotonic()
        moved = wait_for(
            lambda: victim.name not in (s := _serving(c.api, net_id)) and len(s) == 2 and s,
            DOWN + 10,
            "failover to the third host",
        )
        elapsed = time.monotonic() - killed
        print(f"failover: {elapsed:.2f}s (host_down_time {DOWN}s)")
        assert elapsed <= DOWN + 3
        assert two[1] in moved  # the healthy placement did not move
        port, ip = _lease(tmp_path, c.api, net_id, c.segment.name)
        assert port["status"] == "ACTIVE" and ip == port["fixed_ips"][0]["ip_address"]

        c.api.put(f"/v2.0/networks/{net_id}", json={"network": {"ha_count": 1}})
        wait_for(
            lambda: (
                len(_serving(c.api, net_id)) == 1
                and sum(bool(h.dnsmasq_networks()) for h in c.hosts if h is not victim) == 1
            ),
            20,
            "one host serving",
        )


def test_a_host_that_loses_the_bridge_loses_the_placement(tmp_path: Path, engine_factory) -> None:  # type: ignore[no-untyped-def]
    with _cluster(tmp_path, engine_factory(MANAGED), "10.89.0.0/24", 2) as c:
        net_id = c.net["id"]
        [first] = wait_for(
            lambda: len(s := _serving(c.api, net_id)) == 1 and s, 40, "one host serving"
        )
        next(h for h in c.hosts if h.name == first).remove_bridge(c.vdsm)
        wait_for(
            lambda: (s := _serving(c.api, net_id)) and s != [first], 20, "the placement to move"
        )
        port, ip = _lease(tmp_path, c.api, net_id, c.segment.name)
        assert port["status"] == "ACTIVE" and ip == port["fixed_ips"][0]["ip_address"]


@pytest.mark.postgresql
def test_two_engines_on_postgresql_the_survivor_takes_over(
    tmp_path: Path,
    engine_factory,
    pg_url: str,
) -> None:
    conf = tmp_path / "db.conf"
    conf.write_text(database_conf(pg_url))
    db_upgrade(conf, timeout=60)
    bus = f"filesystem://{tmp_path}/bus"
    shared = MANAGED + f"[database]\nconnection = {pg_url}\n[DEFAULT]\ntransport_url = {bus}\n"
    first, second = engine_factory(shared), engine_factory(shared)
    leader = wait_for(
        lambda: next((e for e in (first, second) if "runs the DHCP manager" in e.logs()), None),
        20,
        "one engine to run the manager",
    )
    other = second if leader is first else first
    assert "runs the DHCP manager" not in other.logs()
    with _cluster(tmp_path, other, "10.90.0.0/24", 1, bus=bus) as c:
        net_id, [host] = c.net["id"], c.hosts
        wait_for(lambda: _serving(c.api, net_id) == [host.name], 40, "placed by the leader")
        leader.proc.kill()  # the engine running the manager dies
        leader.proc.wait()
        wait_for(lambda: "runs the DHCP manager" in other.logs(), 20, "the survivor takes over")
        c.api.put(f"/v2.0/networks/{net_id}", json={"network": {"ha_count": 0}})
        wait_for(lambda: not host.dnsmasq_networks(), 30, "the survivor's placement applied")


def test_a_removed_host_namespace_fails_over(tmp_path: Path, engine_factory) -> None:  # type: ignore[no-untyped-def]
    """The serving host vanishes whole: its processes die and its namespace (bridges,
    uplinks, DHCP interfaces) is removed; the other host takes over, nothing is lost."""
    with _cluster(tmp_path, engine_factory(MANAGED), "10.91.0.0/24", 2) as c:
        net_id = c.net["id"]
        [first] = wait_for(
            lambda: len(s := _serving(c.api, net_id)) == 1 and s, 40, "one host serving"
        )
        before, ip = _lease(tmp_path, c.api, net_id, c.segment.name)
        assert ip == before["fixed_ips"][0]["ip_address"]
        victim = next(h for h in c.hosts if h.name == first)
        victim.close()  # processes killed, DHCP namespaces, uplinks and host namespace removed
        assert victim.ns not in netns.listnetns()
        gone = time.monotonic()
        wait_for(lambda: (s := _serving(c.api, net_id)) and first not in s, DOWN + 10, "failover")
        took = time.monotonic() - gone
        after, ip = _lease(tmp_path, c.api, net_id, c.segment.name)
        assert after["status"] == "ACTIVE" and ip == after["fixed_ips"][0]["ip_address"]
        check_nothing_lost(c.api, net_id, [before, after])
        record(
            "fault",
            "serving host's namespace removed (host gone): failover",
            failover_s=round(took, 2),
            host_down_time_s=DOWN,
            lost=0,
            duplicated=0,
            leased_exactly=2,
        )


def _second_network(c: SimpleNamespace, cidr: str) -> tuple[dict, Bridge, float]:
    """A bridge appears on the cluster's one host, then its network and subnet are
    created; returns the network, its segment and when the bridge appeared."""
    [host] = c.hosts
    vdsm, segment = f"vn{rand(6)}", Bridge()
    host.add_bridge(vdsm, segment.name)
    began = time.monotonic()
    net = c.api.post("/v2.0/networks", json={"network": {"name": vdsm, "ha_count": 1}})
    net = net.json()["network"]
    subnet = {"subnet": {"network_id": net["id"], "cidr": cidr}}
    c.api.post("/v2.0/subnets", json=subnet).raise_for_status()
    return net, segment, began


def test_a_port_on_a_network_set_up_just_now_waits_for_its_server(
    tmp_path: Path,
    engine_factory,
) -> None:
    """ "Run VM right after Setup Networks": a bridge appears on a host, its network
    and subnet are created, a port is created at once. The port create waits for
    the server that is coming and the VM's one DISCOVER, sent the moment the
    answer comes, gets its address."""
    with _cluster(tmp_path, engine_factory(MANAGED), "10.92.0.0/24", 1) as c:
        [host] = c.hosts
        wait_for(lambda: _serving(c.api, c.net["id"]) == [host.name], 40, "the first network")
        net, segment, began = _second_network(c, "10.93.0.0/24")
        try:
            port, ip = _lease(tmp_path, c.api, net["id"], segment.name)
            took = time.monotonic() - began
            print(f"bridge up to port ACTIVE and leased: {took:.2f}s")
            assert port["status"] == "ACTIVE", port.get("dhcp_status_reason")
            assert port["dhcp_ready_hosts"] == [host.name]
            assert ip == port["fixed_ips"][0]["ip_address"]  # its one DISCOVER, 1 s to answer
        finally:
            segment.remove()


def _dnsmasq_pid(host: LabHost, net_id: str) -> int | None:
    """The pid of the host's dnsmasq for the network (its --conf-file names the id)."""
    conf = f"/dhcp/{net_id}/dnsmasq.conf"
    for proc in host.processes():
        if any(a.startswith("--conf-file=") and a.endswith(conf) for a in proc.info["cmdline"]):
            return proc.pid
    return None


def test_a_networks_lease_time_applies_to_it_alone(tmp_path: Path, engine_factory) -> None:  # type: ignore[no-untyped-def]
    """dhcp_lease_time reaches the VMs of its network; the other network's dnsmasq
    on the same host keeps running."""
    with _cluster(tmp_path, engine_factory(MANAGED), "10.94.0.0/24", 1) as c:
        [host] = c.hosts
        first = c.net["id"]
        wait_for(lambda: _serving(c.api, first) == [host.name], 40, "the first network")
        net, segment, _ = _second_network(c, "10.95.0.0/24")
        try:
            wait_for(lambda: _serving(c.api, net["id"]) == [host.name], 20, "the second network")
            before = {n: _dnsmasq_pid(host, n) for n in (first, net["id"])}
            for lease_time, expected in ((600, 600), (-1, 0xFFFFFFFF)):
                old = _dnsmasq_pid(host, first)
                body = {"network": {"dhcp_lease_time": lease_time}}
                c.api.put(f"/v2.0/networks/{first}", json=body).raise_for_status()
                wait_for(
                    lambda o=old: _dnsmasq_pid(host, first) not in (None, o),  # type: ignore[misc]
                    20,
                    "the network's dnsmasq restarted with the new lease time",
                )
                vm = Vm(c.segment.name, f"02:00:5e:{rand(2)}:{rand(2)}:{rand(2)}")
                try:
                    port = c.api.post(
                        "/v2.0/ports",
                        json={"port": {"network_id": first, "mac_address": vm.mac}},
                    ).json()["port"]
                    assert port["status"] == "ACTIVE", port
                    client = RunningClient(vm, "udhcpc", tmp_path)
                    try:
                        got = client.wait_bound(client.start(), 10)
                    finally:
                        client.stop()
                finally:
                    vm.remove()
                assert got.lease == expected and got.ip == port["fixed_ips"][0]["ip_address"]
            assert _dnsmasq_pid(host, net["id"]) == before[net["id"]]  # never restarted
        finally:
            segment.remove()
