"""python-openstackclient (the ``openstack`` command) against a real ``ovirt-ipam
engine`` process, as an administrator types it with an openrc: Keystone v3 password
auth against the engine's own ``/v3``, the network endpoint from its catalog.

It sends what Neutron converts (``--mtu 1400`` as the string "1400") and finds
resources by name (a GET by id that 404s, then a filtered list).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ipam.db.engine import Database
from ipam.lab.harness import EngineProcess
from ipam.store import Store

PASSWORD = "pw"
TOKEN_CONF = f"auth_strategy = token\nauth_token = s3cret\nauth_password = {PASSWORD}\n"
OPENSTACK = str(Path(sys.executable).parent / "openstack")


class Openstack:
    def __init__(self, engine: EngineProcess) -> None:
        self.engine = engine
        keep = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env = keep | {
            "OS_AUTH_URL": f"{engine.url}/v3",
            "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": "admin",
            "OS_PASSWORD": PASSWORD,
            "OS_PROJECT_NAME": "ovirt",
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default",
        }

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [OPENSTACK, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert proc.returncode == 0, f"openstack {' '.join(args)}:\n{proc.stderr}"
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)

    def ids(self, *args: str) -> set[str]:
        return {row["ID"] for row in self.json(*args)}


@pytest.fixture
def engine(engine_factory: Callable[..., EngineProcess]) -> EngineProcess:
    return engine_factory(TOKEN_CONF)


@pytest.fixture
def osc(engine: EngineProcess) -> Openstack:
    return Openstack(engine)


@pytest.fixture
def netdata(osc: Openstack) -> dict[str, Any]:
    net = osc.json("network", "create", "--mtu", "1400", "net1")
    sub = osc.json(
        "subnet",
        "create",
        "--network",
        "net1",
        "--subnet-range",
        "10.70.0.0/24",
        "--gateway",
        "10.70.0.1",
        "--allocation-pool",
        "start=10.70.0.100,end=10.70.0.199",
        "--dns-nameserver",
        "10.70.0.53",
        "--dns-nameserver",
        "192.0.2.53",
        "--host-route",
        "destination=192.0.2.0/24,gateway=10.70.0.254",
        "sub1",
    )
    return {"net": net, "sub": sub}


def test_networks(osc: Openstack) -> None:
    net = osc.json("network", "create", "--mtu", "1400", "net1")  # "mtu": "1400" on the wire
    assert (net["name"], net["mtu"], net["vdsm_name"], net["status"]) == (
        "net1",
        1400,
        "net1",
        "ACTIVE",
    )
    linked = osc.json(
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "10",
        "--disable-port-security",
        "VM Network",
    )
    assert (linked["provider:segmentation_id"], linked["vdsm_name"]) == (10, "physnet1")
    assert linked["port_security_enabled"] is False
    free = osc.json("network", "create", "--description", "no bridge", "Another VM Network")
    assert free["vdsm_name"] is None  # a name that is no VDSM name: kept, without a bridge
    osc.run("network", "set", "--mtu", "9000", "--name", "VM Network 2", "VM Network")
    shown = osc.json("network", "show", "VM Network 2")
    assert (shown["mtu"], shown["vdsm_name"]) == (9000, "physnet1")
    osc.run("network", "set", "--disable", "net1")
    assert osc.json("network", "show", "net1")["admin_state_up"] is False
    names = {n["Name"] for n in osc.json("network", "list")}
    assert names == {"net1", "VM Network 2", "Another VM Network"}
    assert {n["Name"] for n in osc.json("network", "list", "--disable")} == {"net1"}
    bad = osc.run("network", "create", "--mtu", "67", "tiny", ok=False)
    assert bad.returncode == 1 and "mtu" in bad.stderr
    osc.run("network", "delete", "Another VM Network")
    assert len(osc.json("network", "list")) == 2


def test_subnets_with_pools_dns_and_host_routes(osc: Openstack, netdata: dict) -> None:
    sub = netdata["sub"]
    assert sub["allocation_pools"] == [{"start": "10.70.0.100", "end": "10.70.0.199"}]
    assert sub["dns_nameservers"] == ["10.70.0.53", "192.0.2.53"]
    assert sub["host_routes"] == [{"destination": "192.0.2.0/24", "nexthop": "10.70.0.254"}]
    assert (sub["gateway_ip"], sub["ip_version"], sub["enable_dhcp"]) == ("10.70.0.1", 4, True)
    osc.run(
        "subnet",
        "set",
        "--no-dns-nameservers",
        "--dns-nameserver",
        "10.70.0.54",
        "--host-route",
        "destination=198.51.100.0/24,gateway=10.70.0.253",
        "sub1",
    )
    shown = osc.json("subnet", "show", "sub1")
    assert shown["dns_nameservers"] == ["10.70.0.54"]
    assert {r["destination"] for r in shown["host_routes"]} == {"192.0.2.0/24", "198.51.100.0/24"}
    route = "destination=192.0.2.0/24,gateway=10.70.0.254"
    osc.run("subnet", "unset", "--host-route", route, "sub1")
    osc.run("subnet", "set", "--gateway", "none", "--no-dhcp", "sub1")
    shown = osc.json("subnet", "show", "sub1")
    assert shown["host_routes"] == [{"destination": "198.51.100.0/24", "nexthop": "10.70.0.253"}]
    assert (shown["gateway_ip"], shown["enable_dhcp"]) == (None, False)
    listed = osc.json("subnet", "list", "--network", "net1")
    assert [s["Subnet"] for s in listed] == ["10.70.0.0/24"]
    v6 = osc.json(
        "subnet", "create", "--network", "net1", "--subnet-range", "fd00::/64", "--ip-version",
        "6", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac", "v6",
    )  # fmt: skip
    assert (v6["ip_version"], v6["cidr"], v6["gateway_ip"]) == (6, "fd00::/64", "fd00::1")
    assert (v6["ipv6_ra_mode"], v6["ipv6_address_mode"]) == ("slaac", "slaac")
    bad = osc.run(
        "subnet", "create", "--network", "net1", "--subnet-range", "fd01::/64", "--ip-version",
        "6", "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "dhcpv6-stateful", "v6b",
        ok=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "must be the same value" in bad.stderr


def test_ports_fixed_ips_hosts_and_filters(osc: Openstack, netdata: dict) -> None:
    port1 = osc.json(
        "port",
        "create",
        "--network",
        "net1",
        "--fixed-ip",
        "subnet=sub1,ip-address=10.70.0.150",
        "--host",
        "host-a",
        "--device",
        "vm-1",
        "--device-owner",
        "oVirt",
        "--mac-address",
        "56:6f:00:00:00:01",
        "port1",
    )
    assert port1["fixed_ips"] == [{"subnet_id": netdata["sub"]["id"], "ip_address": "10.70.0.150"}]
    assert (port1["binding_host_id"], port1["device_owner"], port1["device_id"]) == (
        "host-a",
        "oVirt",
        "vm-1",
    )
    port2 = osc.json("port", "create", "--network", "net1", "--device", "vm-2", "port2")
    [fixed] = port2["fixed_ips"]
    assert fixed["ip_address"].startswith("10.70.0.1")  # from the pool, 100-199
    one, both = {port1["id"]}, {port1["id"], port2["id"]}
    assert osc.ids("port", "list", "--device-id", "vm-1") == one
    assert osc.ids("port", "list", "--device-owner", "oVirt") == one
    assert osc.ids("port", "list", "--mac-address", "56:6f:00:00:00:01") == one
    assert osc.ids("port", "list", "--fixed-ip", "ip-address=10.70.0.150") == one
    assert osc.ids("port", "list", "--fixed-ip", "subnet=sub1") == both
    assert osc.ids("port", "list", "--host", "host-a") == one
    assert osc.ids("port", "list", "--network", "net1") == both
    assert osc.ids("port", "list", "--device-id", "nobody") == set()
    osc.run("port", "set", "--host", "host-b", "port1")  # the VM migrates
    moved = osc.json("port", "show", "port1")
    assert (moved["binding_host_id"], moved["fixed_ips"]) == ("host-b", port1["fixed_ips"])
    osc.run("port", "set", "--fixed-ip", "ip-address=10.70.0.160", "--no-fixed-ip", "port2")
    assert [f["ip_address"] for f in osc.json("port", "show", "port2")["fixed_ips"]] == [
        "10.70.0.160"
    ]
    taken = osc.run(
        "port", "create", "--network", "net1", "--fixed-ip", "ip-address=10.70.0.150", "x", ok=False
    )
    assert taken.returncode == 1 and "10.70.0.150" in taken.stderr
    osc.run("port", "delete", "port1", "port2")
    assert osc.json("port", "list") == []


def test_port_dns_name_and_extra_dhcp_options(osc: Openstack, netdata: dict) -> None:
    """``port create --dns-name --extra-dhcp-option``, ``port set``, ``port show`` and
    ``network set --dns-domain`` (issue 16)."""
    osc.run("network", "set", "--dns-domain", "Lab.Example.", "net1")
    assert osc.json("network", "show", "net1")["dns_domain"] == "lab.example."
    port = osc.json(
        "port",
        "create",
        "--network",
        "net1",
        "--dns-name",
        "VM1",
        "--extra-dhcp-option",
        "name=bootfile-name,value=pxelinux.0,ip-version=4",
        "--extra-dhcp-option",
        "name=ntp-server,value=fd00::123,ip-version=6",
        "p1",
    )
    assert port["dns_name"] == "vm1"
    [address] = [f["ip_address"] for f in port["fixed_ips"]]
    assert port["dns_assignment"] == [
        {"hostname": "vm1", "ip_address": address, "fqdn": "vm1.lab.example."}
    ]
    assert port["extra_dhcp_opts"] == [
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
        {"opt_name": "ntp-server", "opt_value": "fd00::123", "ip_version": 6},
    ]
    osc.run(
        "port",
        "set",
        "--dns-name",
        "vm2",
        "--extra-dhcp-option",
        "name=67,value=ipxe.efi",
        "--extra-dhcp-option",
        "name=tftp-server,value=10.70.0.5,ip-version=4",
        "p1",
    )
    shown = osc.json("port", "show", "p1")
    assert (shown["dns_name"], shown["dns_assignment"][0]["fqdn"]) == ("vm2", "vm2.lab.example.")
    assert shown["extra_dhcp_opts"] == [
        {"opt_name": "bootfile-name", "opt_value": "ipxe.efi", "ip_version": 4},
        {"opt_name": "ntp-server", "opt_value": "fd00::123", "ip_version": 6},
        {"opt_name": "tftp-server", "opt_value": "10.70.0.5", "ip_version": 4},
    ]
    table = osc.run("port", "show", "p1").stdout
    assert "vm2.lab.example." in table and "ipxe.efi" in table
    for args in (
        ("--dns-name", "vm_2"),
        ("--extra-dhcp-option", "name=dhcp-script,value=/bin/sh"),
        ("--extra-dhcp-option", "name=server-ip-address,value=tftp.example"),
    ):
        bad = osc.run("port", "set", *args, "p1", ok=False)
        assert bad.returncode == 1 and "Invalid input" in bad.stderr, bad.stderr
    other = osc.run("port", "create", "--network", "net1", "--dns-name", "vm2", "p2", ok=False)
    assert other.returncode == 1 and "already used" in other.stderr
    no_dot = osc.run("network", "set", "--dns-domain", "example.org", "net1", ok=False)
    assert no_dot.returncode == 1 and "dns_domain" in no_dot.stderr
    assert osc.json("port", "show", "p1") == shown


def test_ip_availability_and_dhcp_agents(osc: Openstack, netdata: dict, tmp_path: Path) -> None:
    for n in range(3):
        osc.run("port", "create", "--network", "net1", f"p{n}")
    [row] = osc.json("ip", "availability", "list")
    assert (row["Network Name"], row["Total IPs"], row["Used IPs"]) == ("net1", 100, 3)
    shown = osc.json("ip", "availability", "show", "net1")
    [per_subnet] = shown["subnet_ip_availability"]
    assert (per_subnet["cidr"], per_subnet["total_ips"], per_subnet["used_ips"]) == (
        "10.70.0.0/24",
        100,
        3,
    )
    assert osc.json("network", "agent", "list") == []
    # A DHCP agent's heartbeat, as the bus server records it, in the engine's store.
    db = Database(f"sqlite:///{tmp_path}/state/ovirt-ipam.sqlite")
    net_id = netdata["net"]["id"]
    status = {"networks": [{"id": net_id, "ports": 3, "dnsmasq": "running"}]}
    Store(db).agent_heartbeat("host-a", [net_id], status, time.time())
    db.dispose()
    [agent] = osc.json("network", "agent", "list")
    assert (agent["Agent Type"], agent["Host"], agent["Alive"], agent["State"]) == (
        "DHCP agent",
        "host-a",
        True,
        True,
    )
    assert [a["Host"] for a in osc.json("network", "agent", "list", "--network", "net1")] == [
        "host-a"
    ]
    assert [a["Host"] for a in osc.json("network", "agent", "list", "--agent-type", "dhcp")] == [
        "host-a"
    ]
    shown = osc.json("network", "agent", "show", agent["ID"])
    assert shown["configuration"]["ports"] == 3
