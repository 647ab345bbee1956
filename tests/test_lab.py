"""The lab end to end (issues 6 and 11): ``ovirt-ipam lab`` as a user runs it, every
part real.

3 hosts, 2 networks (HA 2 and 1), 20 VMs whose DHCP clients (udhcpc and dhclient)
keep running: every VM leases exactly its allocated IP on its first DISCOVER; a
serving host is killed, the VMs it served keep their address and a reboot of one
gets its lease again at once from a live server; new VMs still lease; ``lab down``
leaves no namespace, link, process or file. What the lab reports is checked against
the engine's API and the VMs' own interfaces, not taken on its word.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pyroute2 import netns

from dhcp_driver.netns import iproute_in
from ipam.lab.harness import free_port
from ipam.lab.netparts import rand

pytestmark = pytest.mark.root  # the lab, and its refusals, compare machine-wide namespaces

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


class LabCli:
    def __init__(self, base: Path) -> None:
        self.name = f"t{rand(6)}"
        self.base = base

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        where = ["--name", self.name, "--dir", str(self.base)]
        done = subprocess.run(
            [sys.executable, "-m", "ipam.cli.main", "lab", *args, *where],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert done.returncode == 0, f"lab {args}: rc {done.returncode}\n{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)

    def namespaces(self) -> list[str]:
        return [n for n in netns.listnetns() if n.startswith(f"{self.name}-")]

    def processes(self) -> list[psutil.Process]:
        """Processes naming the lab's directory or one of its namespaces, however."""
        where, prefix = str(self.base / self.name), f"{self.name}-"
        return [
            p
            for p in psutil.process_iter(["cmdline"])
            if any(where in a or a.startswith(prefix) for a in p.info["cmdline"] or [])
        ]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabCli]:
    cli = LabCli(tmp_path / "labs")
    yield cli
    cli.run("down", check=False)  # whatever the test left


def _eth0_addresses(namespace: str) -> list[str]:
    with iproute_in(namespace) as ip:
        idx = ip.link_lookup(ifname="eth0")[0]
        return [a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=idx, family=2)]


def _check_vms(api: httpx.Client, vms: list[dict[str, Any]]) -> None:
    """Each VM holds exactly its port's IP, leased on its first DISCOVER."""
    for vm in vms:
        port = api.get(f"/v2.0/ports/{vm['port_id']}").json()["port"]
        assert port["mac_address"] == vm["mac"]
        assert vm["allocated_ip"] == port["fixed_ips"][0]["ip_address"]
        assert vm["leased_ip"] == vm["allocated_ip"], vm
        assert vm["first_try"] is True, vm
        assert vm["port_status"] == "ACTIVE", vm
        assert _eth0_addresses(vm["namespace"]) == [vm["allocated_ip"]]


def test_lab_up_failover_and_down(lab: LabCli) -> None:
    port = free_port()
    up = lab.run(
        "up",
        *("--hosts", "3", "--networks", "2", "--ha", "2,1", "--vms", "20", "--port", str(port)),
        *("--client", "both"),
    )
    assert "lab " + lab.name + " is up" in up.stderr and "[20/20]" in up.stderr  # progress
    assert "Time to lease" in up.stdout and "Serves DHCP for" in up.stdout  # the tables

    st = lab.json("status")
    api = httpx.Client(base_url=st["api_url"], timeout=30)
    assert [h["name"] for h in st["hosts"]] == [f"{lab.name}-host{i}" for i in (1, 2, 3)]
    assert all(h["namespace"] in lab.namespaces() for h in st["hosts"])
    net1, net2 = st["networks"]
    assert (net1["ha_count"], net2["ha_count"]) == (2, 1)
    assert (len(net1["serving_hosts"]), len(net2["serving_hosts"])) == (2, 1)
    assert all(set(h["bridges"]) == {net1["vdsm_name"], net2["vdsm_name"]} for h in st["hosts"])
    assert len(st["vms"]) == 20
    assert {v["network"] for v in st["vms"]} == {net1["name"], net2["name"]}
    _check_vms(api, st["vms"])
    ips = [v["leased_ip"] for v in st["vms"]]
    assert len(set(ips)) == 20
    clients = {v["client"] for v in st["vms"] if v["network"] == net2["name"]}
    assert clients == {"udhcpc", "dhclient"}
    assert all(v["client_running"] for v in st["vms"])  # clients keep running after the lease

    again = lab.json("up", "--port", str(port))  # up twice: the same lab, untouched
    assert again["engine"]["pid"] == st["engine"]["pid"] and len(again["vms"]) == 20

    [victim] = net2["serving_hosts"]  # the only server of the HA 1 network dies
    killed = lab.json("host", "kill", victim)
    assert net2["name"] in killed["served"]
    moved = {f["network"]: f for f in killed["failover"]}
    assert victim not in moved[net2["name"]]["served_by"] and moved[net2["name"]]["served_by"]

    # the VMs it served that run elsewhere are reported, each still holding its address
    served = [v for v in st["vms"] if v["dhcp_server_host"] == victim]
    followed = {v["name"]: v for v in served if v["host"] != victim}
    assert {v["network"] for v in followed.values()} >= {net2["name"]}
    report = {v["vm"]: v for v in killed["vms"]}
    assert set(report) == set(followed)
    assert set(killed["vms_on_killed_hosts"]) == {v["name"] for v in served if v["host"] == victim}
    for name, vm in followed.items():
        assert report[name]["ip"] == vm["leased_ip"]
        assert report[name]["kept_address"] is True, report[name]
        assert _eth0_addresses(vm["namespace"]) == [vm["leased_ip"]]

    # a reboot of a VM the dead host served: bound again at once, by a live server
    net2_vms = [v for v in followed.values() if v["network"] == net2["name"]]
    picks = [next(v for v in net2_vms if v["client"] == c) for c in ("dhclient", "udhcpc")]
    rebooted = lab.json("vm", "reboot", *(v["name"] for v in picks), "--timeout", "30")
    for vm, res in zip(picks, rebooted, strict=True):
        assert res["vm"] == vm["name"] and res["address_before"] == vm["leased_ip"]
        assert res["leased_ip"] == vm["leased_ip"], res
        assert res["dhcp_server_host"] in moved[net2["name"]]["served_by"], res
        assert res["seconds"] < 1.0, res
        assert _eth0_addresses(vm["namespace"]) == [vm["leased_ip"]]
    after = lab.json("status")
    assert next(h for h in after["hosts"] if h["name"] == victim)["killed"] is True
    new_vms = lab.json("vm", "boot", net2["name"], "--count", "3") + lab.json(
        "vm", "boot", net1["name"], "--count", "2", "--client", "dhclient"
    )
    assert len(new_vms) == 5 and all(v["host"] != victim for v in new_vms)
    assert all(v["dhcp_server_host"] != victim for v in new_vms)
    _check_vms(api, new_vms)
    api.close()

    assert lab.processes() and lab.namespaces()
    lab.run("down")
    assert lab.namespaces() == []
    assert lab.processes() == []
    assert not (lab.base / lab.name).exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(st["api_url"] + "/", timeout=2)
    assert lab.run("down").returncode == 0  # down twice is safe


@pytest.mark.rabbitmq
@pytest.mark.postgresql
def test_lab_on_rabbitmq_and_postgresql(lab: LabCli, pg_url: str) -> None:
    up = lab.json(
        "up",
        "--hosts",
        "2",
        "--networks",
        "1",
        "--ha",
        "2",
        "--vms",
        "3",
        "--port",
        str(free_port()),
        "--transport-url",
        RABBITMQ,
        "--database",
        pg_url,
    )
    assert up["transport_url"] == "amqp://guest:****@127.0.0.1:5672//"
    assert len(up["networks"][0]["serving_hosts"]) == 2
    with httpx.Client(base_url=up["api_url"], timeout=30) as api:
        _check_vms(api, up["vms"])
    assert "guest:guest" not in json.dumps(lab.json("status"))
    lab.run("down")
    assert lab.namespaces() == [] and lab.processes() == []
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.connect() as conn:  # the external store keeps nothing of the lab
        assert conn.execute(text("select count(*) from networks")).scalar() == 0
        assert conn.execute(text("select count(*) from ports")).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["up", "--name", "../etc"], "invalid lab name"),
        (["up", "--name", "a-b"], "invalid lab name"),
        (["up", "--name", "x" * 9], "invalid lab name"),
        (["up", "--hosts", "0"], "--hosts must be between 1 and 20"),
        (["up", "--vms", "100000"], "--vms must be between 0 and 500"),
        (["up", "--ha", "2,-1"], "HA counts between 0 and 20"),
        (["up", "--transport-url", "amqp://guest:guest@192.0.2.1//"], "127.0.0.1 or localhost"),
        (["up", "--database", "mysql://x"], "PostgreSQL URL"),
        (["up", "--lease-time", "60"], "--lease-time must be between 120"),
        (["vm", "reboot", "vm1"], "'ovirt-ipam lab up' first"),
        (["status"], "'ovirt-ipam lab up' first"),
        (["vm", "boot", "net1"], "'ovirt-ipam lab up' first"),
        (["host", "kill", "h1"], "'ovirt-ipam lab up' first"),
    ],
)
def test_lab_refuses_bad_input_and_makes_nothing(
    tmp_path: Path, args: list[str], error: str
) -> None:
    base = tmp_path / "labs"
    before = set(netns.listnetns())
    done = subprocess.run(
        [sys.executable, "-m", "ipam.cli.main", "lab", *args, "--dir", str(base)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert error in done.stderr and "Traceback" not in done.stderr
    assert set(netns.listnetns()) == before
    assert not base.exists() or not any(base.iterdir())
