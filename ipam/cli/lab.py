"""``ovirt-ipam lab up|status|vm boot|vm reboot|host kill|host start|down``: the lab's CLI.

Progress goes to stderr as it happens; the result (tables, or JSON with ``-f json``)
to stdout, so scripts read stdout alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ipam.cli import table
from ipam.lab.lab import CLIENTS, IPV6_MODES, LEASE_TIME, Lab, UpOptions, clock
from ipam.lab.record import DEFAULT_BASE, LabError


def _progress() -> Any:
    start = time.monotonic()

    def show(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    return show


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(args.name, Path(args.dir), _progress())


def _ha(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HA counts like 2,1, got {text!r}") from None


# -- rendering -------------------------------------------------------------------------------


def _server(vm: dict[str, Any]) -> str:
    if not vm.get("dhcp_server"):
        return ""
    return f"{vm['dhcp_server_host'] or '?'} ({vm['dhcp_server']})"


def _lease_time(vm: dict[str, Any]) -> str:
    if vm.get("time_to_lease_s") is None:
        return "no lease"
    shown = f"{vm['time_to_lease_s'] * 1000:.0f} ms"
    return shown if vm.get("first_try") else f"{shown} (retried)"


def holds_ipv6(vm: dict[str, Any]) -> bool:
    """eth0's global IPv6 addresses are exactly the port's IPv6 fixed IP."""
    return vm.get("eth0_ipv6") == [vm.get("allocated_ip6")]


def _ipv6_now(vm: dict[str, Any]) -> str:
    """What eth0 has, flagged when it is not exactly the port's address."""
    shown = ", ".join(vm.get("eth0_ipv6") or []) or "-"
    return shown if holds_ipv6(vm) else f"{shown} (NOT the port's)"


def vms_table(vms: list[dict[str, Any]]) -> str:
    """Each VM's port and what its DHCP client got; with IPv6 columns on a dual-stack lab."""
    ipv6 = any(v.get("ipv6_mode") for v in vms)
    head = ["VM", "Network", "Host", "MAC", "Allocated IP", "Leased IP"]
    if ipv6:
        head += ["IPv6 mode", "Allocated IPv6", "IPv6 on eth0"]
    rows = []
    for v in vms:
        row = [
            v["name"],
            v["network"],
            v["host"],
            v["mac"],
            v["allocated_ip"],
            v["leased_ip"] or "-",
        ]
        if ipv6:
            row += (
                [v["ipv6_mode"], v["allocated_ip6"], _ipv6_now(v)]
                if v.get("ipv6_mode")
                else ["-", "-", "-"]
            )
        rows.append([*row, _server(v), _lease_time(v)])
    return table.render([*head, "DHCP server", "Time to lease"], rows)


def status_text(st: dict[str, Any]) -> str:
    engine = st["engine"]
    lines = [
        f"Lab {st['name']} in {st['directory']}",
        f"Engine: pid {engine['pid']} {'running' if engine['running'] else 'NOT RUNNING'}, "
        f"API {st['api_url']}, store {st['store']}, bus {st['transport_url']}",
        f"Dashboard: {st['api_url'].rstrip('/')}/dashboard",
        "",
        table.render(
            ["Host", "Namespace", "Bridges", "Host service", "Serves DHCP for"],
            [
                [
                    h["name"],
                    h["namespace"],
                    ", ".join(h["bridges"]),
                    "killed" if h["killed"] else h["host_service"],
                    ", ".join(h["serves"]) or "-",
                ]
                for h in st["hosts"]
            ],
        ),
        _networks_table(st["networks"]),
    ]
    if st["vms"]:
        lines.append(vms_table(st["vms"]))
        leased = [v for v in st["vms"] if v.get("leased_ip")]
        exact = sum(v["leased_ip"] == v["allocated_ip"] for v in leased)
        first = sum(bool(v.get("first_try")) for v in st["vms"])
        dual = [v for v in st["vms"] if v.get("ipv6_mode")]
        lines.append(
            f"{len(st['vms'])} VMs: {exact} leased exactly their allocated IP, "
            f"{first} on their first DISCOVER"
            + (
                f"; {sum(map(holds_ipv6, dual))} of {len(dual)} dual-stack VMs hold exactly "
                "their port's IPv6 address"
                if dual
                else ""
            )
        )
    lines.append(
        f"Try: ovirt-ipam port list --url {st['api_url']}; "
        f"ip netns exec {st['vms'][0]['namespace'] if st['vms'] else '<vm>'} ip addr; "
        f"ovirt-ipam lab host kill {st['hosts'][0]['name'] if st['hosts'] else '<host>'}"
    )
    return "\n".join(lines)


def _networks_table(nets: list[dict[str, Any]]) -> str:
    ipv6 = any(n.get("ipv6") for n in nets)
    head = ["Network", "Id", "CIDR", *(["IPv6 CIDR", "IPv6 mode"] if ipv6 else [])]
    rows = []
    for n in nets:
        v6 = n.get("ipv6")
        row = [n["name"], n["id"], n["cidr"]]
        if ipv6:
            row += [v6["cidr"], v6["mode"]] if v6 else ["-", "-"]
        rows.append([*row, n["ha_count"], ", ".join(n["serving_hosts"]) or "-"])
    return table.render([*head, "HA count", "DHCP servers"], rows)


def continuity_table(vms: list[dict[str, Any]]) -> str:
    def answered(v: dict[str, Any]) -> str:
        if v["answered_by"]:
            return (
                f"{v['answered_by_host']} ({v['answered_by']}): {v['answer_event']} "
                f"+{v['answered_after_kill_s']:.1f} s"
            )
        return f"not yet renewed (T2 at {clock(v['t2_at'])})"

    def kept(v: dict[str, Any]) -> str:
        if v["kept_address"]:
            return "yes"
        lost = ", ".join(e["event"] for e in v["lost_events"])
        gap = v["seconds_without_address"]
        return "NO" + (f" ({lost})" if lost else "") + (f", {gap:.3f} s without" if gap else "")

    return table.render(
        ["VM", "Host", "Client", "Address", "Kept", "Server before", "Answered now by"],
        [
            [
                v["vm"],
                v["host"],
                v["client"],
                v["ip"],
                kept(v),
                f"{v['server_before_host']} ({v['server_before']})",
                answered(v),
            ]
            for v in vms
        ],
    )


def kill_text(out: dict[str, Any]) -> str:
    rows = [
        [f["network"], ", ".join(f["served_by"]), f"{f['seconds']:.2f} s"]
        for f in out.get("failover", [])
    ]
    parts = [
        table.render(["Network", "Now served by", "Failover after"], rows)
        if rows
        else f"host {out['host']} killed; it served {', '.join(out['served']) or 'nothing'}"
    ]
    vms = out.get("vms", [])
    if vms:
        parts.append(continuity_table(vms))
        kept = sum(v["kept_address"] for v in vms)
        answered = sum(bool(v["answered_by"]) for v in vms)
        parts.append(
            f"{len(vms)} VMs held a lease from {out['host']}: {kept} kept their address, "
            f"{answered} answered by a live server since the kill"
        )
    if out.get("vms_on_killed_hosts"):
        parts.append(
            f"Not followed (they run on a killed host): {', '.join(out['vms_on_killed_hosts'])}"
        )
    return "\n".join(parts)


def reboot_table(rows: list[dict[str, Any]]) -> str:
    return table.render(
        ["VM", "Host", "Client", "Address before", "Leased", "Event", "Time to lease", "Server"],
        [
            [
                r["vm"],
                r["host"],
                r["client"],
                r["address_before"] or "-",
                r["leased_ip"] or "NO LEASE",
                r["event"] or "-",
                f"{r['seconds'] * 1000:.0f} ms" if r["seconds"] is not None else "-",
                f"{r['dhcp_server_host'] or '?'} ({r['dhcp_server']})" if r["dhcp_server"] else "-",
            ]
            for r in rows
        ],
    )


def _print(args: argparse.Namespace, result: Any, text: str) -> None:
    print(json.dumps(result, indent=2) if args.format == "json" else text)


# -- commands ---------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    opts = UpOptions(
        hosts=args.hosts,
        networks=args.networks,
        vms=args.vms,
        ha=args.ha,
        port=args.port,
        transport_url=args.transport_url,
        database=args.database,
        client=args.client,
        lease_time=args.lease_time,
        ipv6=args.ipv6,
    )
    st = _lab(args).up(opts)
    _print(args, st, status_text(st))
    return 0


def _status(args: argparse.Namespace) -> int:
    st = _lab(args).status()
    _print(args, st, status_text(st))
    return 0


def _boot(args: argparse.Namespace) -> int:
    vms = _lab(args).boot(args.network, args.count, args.host, args.client)
    _print(args, vms, vms_table(vms))
    return 0 if all(v.get("leased_ip") for v in vms) else 1


def _kill(args: argparse.Namespace) -> int:
    out = _lab(args).kill_host(args.host, wait=not args.no_wait, watch=args.watch)
    _print(args, out, kill_text(out))
    return 0


def _reboot(args: argparse.Namespace) -> int:
    rows = _lab(args).reboot(args.vm, timeout=args.timeout, parallel=args.parallel)
    _print(args, rows, reboot_table(rows))
    return 0 if all(r["leased_ip"] for r in rows) else 1


def _start(args: argparse.Namespace) -> int:
    out = _lab(args).start_host(args.host)
    _print(args, out, f"host {out['host']} started: host service pid {out['service_pid']}")
    return 0


def _down(args: argparse.Namespace) -> int:
    out = _lab(args).down()
    _print(args, out, f"lab {out['name']} is down")
    return 0


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except LabError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1

    return run


def add_parsers(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--name",
        default=os.environ.get("OVIRT_IPAM_LAB", "lab"),
        help="the lab's name (env OVIRT_IPAM_LAB, default lab); prefixes its namespaces",
    )
    common.add_argument(
        "--dir",
        default=os.environ.get("OVIRT_IPAM_LAB_DIR", str(DEFAULT_BASE)),
        help=f"where labs keep their files (env OVIRT_IPAM_LAB_DIR, default {DEFAULT_BASE})",
    )
    common.add_argument("-f", "--format", choices=["table", "json"], default="table")

    lab = sub.add_parser(
        "lab",
        help="a whole data center's DHCP on this machine: hosts and VMs as namespaces",
        description="Hosts are network namespaces with VDSM-named bridges, VMs are namespaces "
        "running real DHCP clients; the engine, host services, agents and dnsmasq are real "
        "processes. Needs root.",
    )
    labsub = lab.add_subparsers(dest="lab_command", required=True)

    up = labsub.add_parser("up", parents=[common], help="build the lab and boot its VMs")
    up.add_argument("--hosts", type=int, default=3, help="hosts (default 3)")
    up.add_argument("--networks", type=int, default=2, help="networks (default 2)")
    up.add_argument("--vms", type=int, default=20, help="VMs booted at the end (default 20)")
    up.add_argument(
        "--ha", type=_ha, default=[2, 1], help="HA counts of the networks, cycled (default 2,1)"
    )
    up.add_argument("--port", type=int, default=9696, help="the engine's API port (default 9696)")
    up.add_argument(
        "--transport-url", help="RabbitMQ on this machine, e.g. amqp://guest:guest@127.0.0.1:5672//"
    )
    up.add_argument(
        "--database", help="PostgreSQL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    up.add_argument("--client", choices=CLIENTS, default="udhcpc", help="VMs' DHCP client")
    up.add_argument(
        "--lease-time",
        type=int,
        default=LEASE_TIME,
        help=f"the agents' DHCP lease time in seconds (default {LEASE_TIME}, dnsmasq's minimum)",
    )
    up.add_argument(
        "--ipv6",
        nargs="?",
        const="mixed",
        choices=IPV6_MODES,
        metavar="MODE",
        help="dual stack: each network also gets an IPv6 /64 in MODE (stateful: DHCPv6, "
        "as the oVirt engine sends it; slaac; stateless: SLAAC and DHCPv6 for DNS; "
        "mixed, the default: the networks cycle through the three)",
    )
    up.set_defaults(func=_guarded(_up))

    labsub.add_parser("status", parents=[common], help="hosts, networks and VMs").set_defaults(
        func=_guarded(_status)
    )

    vm = labsub.add_parser("vm", help="VMs").add_subparsers(dest="vm_command", required=True)
    boot = vm.add_parser(
        "boot", parents=[common], help="create ports and boot VMs right after each"
    )
    boot.add_argument("network", help="the network's name or id")
    boot.add_argument("--count", type=int, default=1)
    boot.add_argument("--host", help="the host to run them on (default: round robin)")
    boot.add_argument("--client", choices=CLIENTS, default="udhcpc")
    boot.set_defaults(func=_guarded(_boot))
    reboot = vm.add_parser(
        "reboot",
        parents=[common],
        help="reboot VMs: restart each one's DHCP client as a reboot would, time the lease",
    )
    reboot.add_argument("vm", nargs="+", help="the VMs' names")
    reboot.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for each lease (default 60)"
    )
    reboot.add_argument(
        "--parallel", type=int, default=10, help="VMs rebooted at a time (default 10)"
    )
    reboot.set_defaults(func=_guarded(_reboot))

    host = labsub.add_parser("host", help="hosts").add_subparsers(
        dest="host_command", required=True
    )
    kill = host.add_parser(
        "kill", parents=[common], help="kill a host (processes and uplinks) and watch failover"
    )
    kill.add_argument("host")
    kill.add_argument("--no-wait", action="store_true", help="do not wait for the failover")
    kill.add_argument(
        "--watch",
        type=float,
        default=0,
        metavar="SECONDS",
        help="keep watching the VMs the host served, up to SECONDS after the kill, until "
        "each has renewed or rebound with a live server",
    )
    kill.set_defaults(func=_guarded(_kill))
    start = host.add_parser("start", parents=[common], help="bring a killed host back")
    start.add_argument("host")
    start.set_defaults(func=_guarded(_start))

    labsub.add_parser(
        "down", parents=[common], help="remove every namespace, link, process and file of the lab"
    ).set_defaults(func=_guarded(_down))
