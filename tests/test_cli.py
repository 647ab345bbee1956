"""The admin CLI (``ovirt-ipam network|subnet|port ...``) against a real engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture
def cli(engine_factory):  # type: ignore[no-untyped-def]
    engine = engine_factory()

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "ipam.cli.main", *args, "--url", engine.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def js(*args: str):  # type: ignore[no-untyped-def]
        return json.loads(run(*args, "-f", "json").stdout)

    run.json = js  # type: ignore[attr-defined]
    return run


def test_network_subnet_port_lifecycle(cli) -> None:  # type: ignore[no-untyped-def]
    net = cli.json("network", "create", "VM Network", "--vdsm-name", "vmnet", "--ha-count", "2")
    assert (net["name"], net["vdsm_name"], net["ha_count"]) == ("VM Network", "vmnet", 2)
    sub = cli.json(
        "subnet",
        "create",
        "--network",
        net["id"],
        "10.20.0.0/24",
        "--dns-nameserver",
        "10.20.0.53",
        "--allocation-pool",
        "start=10.20.0.100,end=10.20.0.199",
        "--host-route",
        "destination=10.30.0.0/16,gateway=10.20.0.254",
    )
    assert sub["allocation_pools"] == [{"start": "10.20.0.100", "end": "10.20.0.199"}]
    assert sub["host_routes"] == [{"destination": "10.30.0.0/16", "nexthop": "10.20.0.254"}]
    port = cli.json(
        "port",
        "create",
        "--network",
        "VM Network",
        "--mac-address",
        "56:6f:00:00:00:01",
        "--device-id",
        "vm-1",
        "--device-owner",
        "oVirt",
        "--host",
        "host1",
    )
    assert port["fixed_ips"][0]["ip_address"] == "10.20.0.100"
    assert port["binding:host_id"] == "host1"
    fixed = cli.json(
        "port",
        "create",
        "--network",
        net["id"],
        "--fixed-ip",
        f"subnet={sub['id']},ip-address=10.20.0.150",
    )
    assert fixed["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.20.0.150"}]

    table = cli("port", "list", "--network", "VM Network").stdout
    assert "56:6f:00:00:00:01" in table and "10.20.0.150" in table and table.startswith("+")
    only = cli.json("port", "list", "--device-id", "vm-1")
    assert [p["id"] for p in only] == [port["id"]]

    moved = cli.json(
        "port", "set", port["id"], "--host", "host2", "--mac-address", "56:6f:00:00:00:02"
    )
    assert (moved["binding:host_id"], moved["mac_address"]) == ("host2", "56:6f:00:00:00:02")
    renamed = cli.json("network", "set", net["id"], "--ha-count", "1")
    assert renamed["ha_count"] == 1 and renamed["revision_number"] == 2
    shown = cli("network", "show", "VM Network").stdout
    assert "| ha_count" in shown and net["id"] in shown

    busy = cli("network", "delete", net["id"], ok=False)
    assert busy.returncode == 1 and "NetworkInUse" in busy.stdout
    for p in (port, fixed):
        cli("port", "delete", p["id"])
    cli("subnet", "delete", sub["id"])
    cli("network", "delete", "VM Network")
    assert cli.json("network", "list") == []


def test_network_dhcp_lease_time(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli.json("network", "create", "plain")["dhcp_lease_time"] is None
    net = cli.json("network", "create", "leased", "--dhcp-lease-time", "600")
    assert (net["dhcp_lease_time"], net["revision_number"]) == (600, 1)
    infinite = cli.json("network", "set", "leased", "--dhcp-lease-time", "infinite")
    assert (infinite["dhcp_lease_time"], infinite["revision_number"]) == (-1, 2)
    listed = cli("network", "list").stdout
    header = listed.splitlines()[1]
    assert "| ha_count | dhcp_lease_time |" in header
    row = next(line for line in listed.splitlines() if net["id"] in line)
    assert [c.strip() for c in row.split("|")][5] == "-1"
    shown = cli("network", "show", "leased").stdout
    assert any(
        [c.strip() for c in line.split("|")][1:3] == ["dhcp_lease_time", "-1"]
        for line in shown.splitlines()
    )
    assert cli.json("placement")[1]["dhcp_lease_time"] == -1
    back = cli.json("network", "set", net["id"], "--dhcp-lease-time", "default")
    assert (back["dhcp_lease_time"], back["revision_number"]) == (None, 3)

    short = cli("network", "set", "leased", "--dhcp-lease-time", "60", ok=False)
    assert short.returncode == 1 and "dhcp_lease_time" in short.stdout
    assert "from 120 to 2147483647" in short.stdout
    garbage = cli("network", "create", "n2", "--dhcp-lease-time", "soon", ok=False)
    assert garbage.returncode == 2 and "'infinite'" in garbage.stderr
    assert "Traceback" not in short.stderr + garbage.stderr
    assert [n["name"] for n in cli.json("network", "list")] == ["plain", "leased"]
    assert cli.json("network", "show", "leased")["dhcp_lease_time"] is None


def test_errors_are_one_clear_line(cli) -> None:  # type: ignore[no-untyped-def]
    missing = cli("network", "show", "nope", ok=False)
    assert missing.returncode == 1 and "no network with id or name 'nope'" in missing.stdout
    bad = cli("network", "create", "n0", "--vdsm-name", "bad name", ok=False)
    assert bad.returncode == 1 and "is not a VDSM network name" in bad.stdout
    net = cli.json("network", "create", "n1")
    bad_cidr = cli("subnet", "create", "--network", net["id"], "10.0.0.0/33", ok=False)
    assert bad_cidr.returncode == 1 and "InvalidInput" in bad_cidr.stdout
    assert "Traceback" not in bad.stdout + bad.stderr + bad_cidr.stderr


def test_unreachable_api_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run(
        [sys.executable, "-m", "ipam.cli.main", "network", "list", "--url", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "cannot reach the ovirt-ipam API" in proc.stdout


def test_placement_lists_networks_and_their_dhcp_hosts(cli) -> None:  # type: ignore[no-untyped-def]
    net = cli.json("network", "create", "vmnet", "--ha-count", "2")
    rows = cli.json("placement")
    assert rows == [
        {
            "network": "vmnet",
            "id": net["id"],
            "vdsm_name": "vmnet",
            "ha_count": 2,
            "dhcp_lease_time": None,
            "dhcp_hosts": [],
            "not_served_because": None,
        }
    ]
    assert "vmnet" in cli("placement").stdout


def test_placement_says_why_a_network_has_no_dhcp_server(cli) -> None:  # type: ignore[no-untyped-def]
    """A name that is no VDSM name (oVirt engine creates such networks) gives a network
    without a bridge: kept, placed on no host, and placement says why."""
    net = cli.json("network", "create", "VM Network 2")
    assert net["vdsm_name"] is None
    cli.json("network", "create", "idle", "--ha-count", "0")
    rows = {r["network"]: r for r in cli.json("placement")}
    reason = rows["VM Network 2"]["not_served_because"]
    assert reason.startswith(f"Network {net['id']} has no bridge (vdsm_name is null)")
    assert "set its vdsm_name" in reason
    assert rows["idle"]["not_served_because"] == "HA count 0"
    assert "has no bridge" in cli("placement").stdout
    cli.json("network", "set", net["id"], "--vdsm-name", "vmnet2")
    rows = {r["network"]: r for r in cli.json("placement")}
    assert rows["VM Network 2"]["not_served_because"] is None


def test_port_names_and_dhcp_options(cli) -> None:  # type: ignore[no-untyped-def]
    """``port set --dns-name --dhcp-option --remove-dhcp-option --ip-version``, ``port
    show``, ``network set --dns-domain --dns-service/--no-dns-service`` (issue 16)."""
    net = cli.json("network", "create", "pxe", "--dns-domain", "Lab.Example.", "--dns-service")
    assert (net["dns_domain"], net["dns_service"]) == ("lab.example.", True)
    cli("subnet", "create", "--network", "pxe", "10.40.0.0/24")
    port = cli.json("port", "create", "--network", "pxe", "--name", "p1", "--dns-name", "VM1")
    assert port["dns_name"] == "vm1"
    assert port["dns_assignment"][0]["fqdn"] == "vm1.lab.example."
    assert port["extra_dhcp_opts"] == []
    changed = cli.json(
        "port",
        "set",
        "p1",
        "--dhcp-option",
        "bootfile-name=pxelinux.0",
        "--dhcp-option",
        "http-boot-url=http://boot.example/efi?arch=x64",
    )
    assert changed["extra_dhcp_opts"] == [
        {"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
        {
            "opt_name": "http-boot-url",
            "opt_value": "http://boot.example/efi?arch=x64",
            "ip_version": 4,
        },
    ]
    assert changed["revision_number"] == port["revision_number"] + 1
    v6 = cli.json("port", "set", "p1", "--ip-version", "6", "--dhcp-option", "ntp-server=fd00::123")
    assert v6["extra_dhcp_opts"][-1] == {
        "opt_name": "ntp-server",
        "opt_value": "fd00::123",
        "ip_version": 6,
    }
    removed = cli.json(
        "port", "set", "p1", "--remove-dhcp-option", "http-boot-url", "--dns-name", "vm2"
    )
    assert [o["opt_name"] for o in removed["extra_dhcp_opts"]] == ["bootfile-name", "ntp-server"]
    assert removed["dns_name"] == "vm2"
    shown = cli("port", "show", "p1").stdout
    assert "vm2.lab.example." in shown and "pxelinux.0" in shown and "| dns_name" in shown

    unknown = cli("port", "set", "p1", "--dhcp-option", "dhcp-script=/bin/sh", ok=False)
    assert unknown.returncode == 1 and "InvalidInput" in unknown.stdout
    assert "'dhcp-script'" in unknown.stdout
    bad = cli("port", "set", "p1", "--dns-name", "vm_2", ok=False)
    assert bad.returncode == 1 and "dns_name" in bad.stdout
    malformed = cli("port", "set", "p1", "--dhcp-option", "bootfile-name", ok=False)
    assert malformed.returncode == 2 and "NAME=VALUE" in malformed.stderr
    assert cli.json("port", "show", "p1") == cli.json("port", "show", port["id"])
    assert cli.json("port", "show", "p1")["revision_number"] == removed["revision_number"]

    off = cli.json("network", "set", "pxe", "--no-dns-service", "--dns-domain", "")
    assert (off["dns_service"], off["dns_domain"]) == (False, "")
    no_dot = cli("network", "set", "pxe", "--dns-domain", "example.org", ok=False)
    assert no_dot.returncode == 1 and "dns_domain" in no_dot.stdout


def test_lease_list_shows_what_the_servers_saw(engine_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``lease list``: every lease of a network, its port (or none), and what the
    client said of itself; a bad state is refused by the CLI."""
    from ipam.db.engine import Database
    from ipam.store import Store

    engine = engine_factory()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ipam.cli.main", *args, "--url", engine.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    net = json.loads(cli("network", "create", "leased", "-f", "json").stdout)
    cli("subnet", "create", "--network", "leased", "10.21.0.0/24")
    port = json.loads(
        cli(
            "port",
            "create",
            "--network",
            "leased",
            "--mac-address",
            "56:6f:00:00:21:01",
            "-f",
            "json",
        ).stdout
    )
    ip = port["fixed_ips"][0]["ip_address"]
    store = Store(Database(f"sqlite:///{tmp_path}/state/ovirt-ipam.sqlite"))
    facts = [
        {
            "mac_address": "56:6f:00:00:21:01",
            "ip_address": ip,
            "state": "bound",
            "seen_at": 1e9,
            "expires_at": 4e9,
            "client_id": "01:56:6f:00:00:21:01",
            "client_hostname": "guest-21",
        },
        {
            "mac_address": "56:6f:00:00:21:99",
            "ip_address": "10.21.0.99",
            "state": "declined",
            "seen_at": 1e9,
        },
    ]
    store.record_leases("h1", net["id"], facts, False)
    store.db.dispose()
    rows = json.loads(cli("lease", "list", "--network", "leased", "-f", "json").stdout)
    by_mac = {r["mac_address"]: r for r in rows}
    assert by_mac["56:6f:00:00:21:01"]["port_id"] == port["id"]
    assert (
        by_mac["56:6f:00:00:21:01"]["client_hostname"],
        by_mac["56:6f:00:00:21:01"]["client_id"],
    ) == ("guest-21", "01:56:6f:00:00:21:01")
    assert by_mac["56:6f:00:00:21:99"]["port_id"] == "(no port has this MAC)"
    declined = json.loads(cli("lease", "list", "--state", "declined", "-f", "json").stdout)
    assert [r["mac_address"] for r in declined] == ["56:6f:00:00:21:99"]
    table = cli("lease", "list", "--network", "leased").stdout
    header = next(line for line in table.splitlines() if "mac_address" in line)
    assert [c.strip() for c in header.split("|")][-3:-1] == ["client_hostname", "client_id"]
    assert "guest-21" in table
    bad = cli("lease", "list", "--state", "stolen")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    # The engine's copy survives an engine restart (same state directory).
    engine.stop()
    engine = engine_factory()
    again = json.loads(cli("lease", "list", "--network", "leased", "-f", "json").stdout)
    assert sorted(again, key=lambda r: r["mac_address"]) == sorted(
        rows, key=lambda r: r["mac_address"]
    )
