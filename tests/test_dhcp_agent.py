"""The DHCP agent end to end, with every part real: an engine process, an agent
process, the bus (filesystem and RabbitMQ), the interface driver's namespaces on a
bridge, dnsmasq, and VMs running busybox udhcpc."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dhcp_driver.agent import exit_watch
from dhcp_driver.mapping import write_mapping
from dhcp_driver.netns import iproute_in
from ipam.lab.netparts import rand
from ipam.polling import wait_for
from tests.agentlab import ip_of
from tests.faultlab import check_nothing_lost, record

pytestmark = pytest.mark.root


def test_agent_serves_creates_deletes_reuse_and_ip_change(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory()
    first = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(first)
    assert w.lease(first) == ip_of(first)
    serving = w.api.get(f"/v2.0/networks/{w.net_id}/dhcp-agents").json()["agents"]
    assert [(a["host"], a["alive"]) for a in serving] == [(w.agent.host, True)]

    second = w.port(mac_address="02:00:00:66:00:02")
    w.wait_active(second)
    assert w.lease(second) == ip_of(second)

    assert w.api.delete(f"/v2.0/ports/{second['id']}").status_code == 204
    gone_vm = w.vms[-1]
    wait_for(
        lambda: gone_vm.udhcpc(w.tmp, tries=1, timeout=1) is None,
        10,
        "the deleted port's MAC refused",
    )

    reuse = w.port(mac_address="02:00:00:66:00:03", fixed_ips=[{"ip_address": ip_of(second)}])
    w.wait_active(reuse)
    assert w.lease(reuse) == ip_of(second)

    moved = w.api.put(
        f"/v2.0/ports/{first['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.66.0.200"}]}}
    ).json()["port"]
    wait_for(lambda: w.lease(moved, tries=1) == "10.66.0.200", 10, "the new IP served")
    assert "Traceback" not in w.agent.logs()


def test_agent_serves_dhcpv6_on_the_engines_ipv6_subnet(world_factory) -> None:  # type: ignore[no-untyped-def]
    """The Administration Portal's IPv6 subnet body (no modes: DHCPv6 stateful, as
    Neutron) beside the IPv4 subnet: a port is ACTIVE once dnsmasq loaded both of its
    addresses, its VM gets both at once, and a deleted port's MAC gets neither."""
    w = world_factory()
    body = {"name": "v6", "dns_nameservers": ["fd66::53"], "ip_version": 6, "gateway_ip": ""}
    sub6 = w.post("subnets", {**body, "network_id": w.net_id, "cidr": "fd66::/64"})
    port = w.port(mac_address="02:00:00:66:06:01")
    addresses = {f["subnet_id"]: f["ip_address"] for f in port["fixed_ips"]}
    assert set(addresses) == {w.subnet["id"], sub6["id"]}
    w.serve()
    w.agent.start()
    w.wait_active(port)
    vm = w.vm(port["mac_address"])
    vm.ipv6_up()
    lease6 = vm.dhclient6(w.tmp)
    assert lease6 is not None and lease6["ip6"] == addresses[sub6["id"]]
    assert lease6["dns"].split() == ["fd66::53"]
    lease4 = vm.udhcpc(w.tmp, tries=1)
    assert lease4 is not None and lease4["ip"] == addresses[w.subnet["id"]]
    # The engine's metrics say the same as its API: one ACTIVE port, one server.
    w.wait_serving()
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(w.api.get("/metrics").text)
        for s in f.samples
    }
    net = ("network_id", w.net_id)
    assert scraped[("ovirt_ipam_ports", (net, ("status", "ACTIVE")))] == 1
    assert scraped[("ovirt_ipam_network_dhcp_servers", (("kind", "serving"), net))] == 1
    assert scraped[("ovirt_ipam_port_create_seconds_count", ())] == 1
    # The agent's own figures, from its heartbeats: the ports it holds (the VM's) and
    # how far behind it is (nothing owed: at most its last acknowledgement).
    ports = w.api.get("/v2.0/ports", params={"network_id": w.net_id}).json()["ports"]
    listed = [p for p in ports if p["device_owner"] != "network:dhcp"]
    host = (("host", w.agent.host),)

    def agent_figures() -> tuple[float, float] | None:
        got = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(w.api.get("/metrics").text)
            for s in f.samples
        }
        held = got.get(("ovirt_ipam_dhcp_agent_ports", host))
        lag = got.get(("ovirt_ipam_dhcp_agent_ack_lag_seconds", host))
        return (held, lag) if held == len(listed) and lag is not None else None

    _held, lag = wait_for(agent_figures, 15, "the agent's figures in /metrics")
    assert 0 <= lag < 5, lag

    assert w.api.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    gone = w.vm(port["mac_address"])
    gone.ipv6_up()
    wait_for(
        lambda: gone.udhcpc(w.tmp, tries=1, timeout=1) is None,
        10,
        "the deleted port's MAC refused",
    )
    assert gone.dhclient6(w.tmp, timeout=3) is None
    assert "Traceback" not in w.agent.logs()


def test_names_options_and_leases_end_to_end(world_factory) -> None:  # type: ignore[no-untyped-def]
    """Issues 16 and 17 through the engine: a named port with a boot file on a network
    with a domain and the DNS service; its VM is told all of it, its lease shows on
    the port within a second of the ACK, a rename waits for the agent, and the
    engine's facts survive an agent restart (rebuilt from dnsmasq's lease file)."""
    w = world_factory()
    body = {"network": {"dns_domain": "lab.example.", "dns_service": True}}
    assert w.api.put(f"/v2.0/networks/{w.net_id}", json=body).status_code == 200
    boot = [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"}]
    port = w.port(mac_address="02:00:00:66:16:01", dns_name="Web-1", extra_dhcp_opts=boot)
    assert port["dns_name"] == "web-1"
    w.serve()
    w.agent.start()
    w.wait_active(port)
    dhcp = w.api.get(
        "/v2.0/ports", params={"network_id": w.net_id, "device_owner": "network:dhcp"}
    ).json()["ports"]
    vm = w.vm(port["mac_address"])
    # The guest calls itself something else: kept on its lease, never its name.
    lease = vm.udhcpc(w.tmp, tries=1, timeout=2, args=["-O", "67", "-x", "hostname:guest-os"])
    acked = time.monotonic()
    assert lease is not None
    assert (lease["ip"], lease["hostname"], lease["domain"], lease["bootfile"]) == (
        ip_of(port),
        "web-1",
        "lab.example",
        "pxelinux.0",
    )
    assert lease["dns"] == ip_of(dhcp[0])  # the DNS service, not the subnet's resolver

    def bound() -> dict | None:
        got = w.api.get(f"/v2.0/ports/{port['id']}").json()["port"]
        return got if (got["dhcp_lease"] or {}).get("state") == "bound" else None

    wait_for(lambda: bound() is not None, 10, "the lease on the port", interval=0.02)
    visible = time.monotonic() - acked
    shown = bound()
    assert shown is not None
    assert shown["dhcp_lease"]["host"] == w.agent.host
    assert shown["dhcp_lease"]["ip_address"] == ip_of(port)
    assert shown["dhcp_lease"]["expires_at"] and shown["dhcp_status_reason"] is None
    said = (shown["dhcp_lease"]["client_id"], shown["dhcp_lease"]["client_hostname"])
    assert said == ("01:" + port["mac_address"], "guest-os")
    assert visible < 1.0, f"lease visible {visible:.2f}s after the ACK"
    query = {"network_id": w.net_id, "dhcp_lease_state": "bound"}
    assert [p["id"] for p in w.api.get("/v2.0/ports", params=query).json()["ports"]] == [port["id"]]
    assert w.api.get("/v2.0/ports", params={"dhcp_lease_state": "stolen"}).status_code == 400
    # A rename is DOWN until the agent has it loaded, then the VM is told the new name.
    renamed = w.api.put(f"/v2.0/ports/{port['id']}", json={"port": {"dns_name": "web-2"}})
    assert renamed.status_code == 200
    w.wait_active(port)
    lease = vm.udhcpc(w.tmp, tries=1, timeout=2)
    assert lease is not None and lease["hostname"] == "web-2"
    # A VM that finds its address taken declines it: the port says why, and the
    # engine counts it (busybox udhcpc -a checks the offer by ARP).
    taken = w.port(mac_address="02:00:00:66:16:02")
    w.wait_active(taken)
    squatter = w.vm("02:00:00:66:16:99")
    with iproute_in(squatter.ns) as ip:
        eth0 = ip.link_lookup(ifname="eth0")[0]
        ip.addr("add", index=eth0, address=ip_of(taken), prefixlen=24)
    assert (
        w.vm(taken["mac_address"]).udhcpc(w.tmp, tries=1, timeout=1, args=["-a", "-A", "1"]) is None
    )

    def reason() -> str | None:
        return w.api.get(f"/v2.0/ports/{taken['id']}").json()["port"]["dhcp_status_reason"]

    wait_for(lambda: reason() == "declined by the client: address in use", 10, "the decline")
    declines = [
        s.value
        for f in text_string_to_metric_families(w.api.get("/metrics").text)
        for s in f.samples
        if s.name == "ovirt_ipam_dhcp_declines_total" and s.labels["network_id"] == w.net_id
    ]
    assert declines == [1.0]
    # The agent dies and comes back: it rebuilds its facts from dnsmasq's lease file
    # (tests/test_lease_facts.py), and the lease stays on the port meanwhile.
    w.agent.stop(signal.SIGKILL)
    w.agent.start()
    w.wait_serving()
    rows = w.api.get("/v2.0/dhcp-leases", params={"network_id": w.net_id}).json()
    by_port = {r["port_id"]: (r["state"], r["host"]) for r in rows["dhcp_leases"]}
    assert by_port == {port["id"]: ("bound", w.agent.host), taken["id"]: ("declined", w.agent.host)}
    after = bound()
    assert after is not None and after["dhcp_lease"]["client_hostname"] == "guest-os"
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
    assert w.lease(port) == ip_of(port)  # renewal while no agent runs
    meanwhile = [w.port() for _ in range(5)]  # events for an agent that is not there
    w.agent.start()
    late = w.port()
    w.wait_active(late)
    assert w.agent.dnsmasq_pids() == pids  # adopted, not restarted
    created = [port, *meanwhile, late]
    for p in created:
        w.wait_active(p)
    check_nothing_lost(w.api, w.net_id, created)
    assert [w.lease(p) for p in created] == [ip_of(p) for p in created]
    record(
        "fault",
        "DHCP agent SIGKILLed, ports created while it is dead, agent restarted",
        ports=len(created),
        lost=0,
        duplicated=0,
        leased_exactly=len(created),
        dnsmasq_restarted=0,
    )


def test_killed_dnsmasq_is_respawned_within_two_seconds(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory()
    port = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(port)
    [pid] = w.agent.dnsmasq_pids()
    os.kill(pid, signal.SIGKILL)
    meanwhile = [w.port() for _ in range(3)]  # created while dnsmasq is down
    new = wait_for(lambda: [p for p in w.agent.dnsmasq_pids() if p != pid], 2, "dnsmasq respawned")
    created = [port, *meanwhile]
    for p in created:
        w.wait_active(p)
    check_nothing_lost(w.api, w.net_id, created)
    assert new and [w.lease(p) for p in created] == [ip_of(p) for p in created]
    record(
        "fault",
        "dnsmasq SIGKILLed, ports created meanwhile",
        ports=len(created),
        lost=0,
        duplicated=0,
        leased_exactly=len(created),
        respawned_within_s=2,
    )


@pytest.mark.rabbitmq
def test_rabbitmq_transport(world_factory) -> None:  # type: ignore[no-untyped-def]
    w = world_factory("amqp://guest:guest@127.0.0.1:5672//")
    port = w.port()
    w.serve()
    w.agent.start()
    w.wait_active(port)
    assert w.lease(port) == ip_of(port)
    late = w.port()
    w.wait_active(late)
    assert w.lease(late) == ip_of(late)


def test_the_exit_watch_calls_back_when_a_process_exits() -> None:
    """A network's worker sleeps until its dnsmasq exits (a pidfd), instead of looking
    every 0.2 s whether it still runs (issue 18); a process already gone calls back at
    once."""
    watch = exit_watch()
    if watch is None:
        pytest.skip("no pidfd on this kernel: workers look every TICK_S")
    proc = subprocess.Popen(["sleep", "60"])
    exited = threading.Event()
    assert watch.watch(proc.pid, exited.set)
    assert not exited.wait(0.2)  # the measured window, not a wait for a condition
    proc.kill()
    assert exited.wait(5)
    proc.wait()
    gone = threading.Event()
    assert watch.watch(proc.pid, gone.set)  # reaped: no such process any more
    assert gone.is_set()
