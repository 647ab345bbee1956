"""``ovirt-ipam network|subnet|port create|list|show|set|delete``, over the REST API."""

from __future__ import annotations

import argparse
from typing import Any

from ipam.cli import table
from ipam.cli.client import ApiError, Client
from ipam.store import networks

COLUMNS = {
    "network": ["id", "name", "vdsm_name", "ha_count", "dhcp_lease_time", "mtu", "subnets"],
    "subnet": ["id", "name", "network_id", "cidr", "gateway_ip", "enable_dhcp"],
    "port": ["id", "name", "network_id", "mac_address", "fixed_ips", "device_owner", "status"],
}
PLURAL = {"network": "networks", "subnet": "subnets", "port": "ports"}


def _kv(text: str) -> dict[str, str]:
    """``start=10.0.0.2,end=10.0.0.9`` -> dict; keys with '-' become '_'."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


#: --dhcp-lease-time default: back to the DHCP agent's [dhcp_agent] lease_time (null).
_AGENT_DEFAULT = "default"


def _lease_time(text: str) -> int | str:
    """Seconds, ``infinite`` (-1) or ``default`` (null: the DHCP agent's lease time)."""
    word = text.strip().lower()
    if word == "infinite":
        return -1
    if word == _AGENT_DEFAULT:
        return _AGENT_DEFAULT
    try:
        return int(word)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds (120 to 2147483647), 'infinite' or 'default', got {text!r}"
        ) from None


def _dhcp_option(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (the value may hold '=', as a URL's query does)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _dhcp_opts(a: argparse.Namespace) -> list[dict[str, Any]]:
    """--dhcp-option and --remove-dhcp-option as extra_dhcp_opts entries (the engine
    merges them into the port's options; a null value removes one)."""
    version = getattr(a, "ip_version", 4)
    out: list[dict[str, Any]] = [
        {"opt_name": name, "opt_value": value, "ip_version": version}
        for name, value in getattr(a, "dhcp_option", None) or []
    ]
    out += [
        {"opt_name": name, "opt_value": None, "ip_version": version}
        for name in getattr(a, "remove_dhcp_option", None) or []
    ]
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="API URL (env OVIRT_IPAM_URL, default http://127.0.0.1:9696)")
    p.add_argument("--token", help="X-Auth-Token (env OVIRT_IPAM_TOKEN)")
    p.add_argument("-f", "--format", choices=["table", "json"], default="table")


def _attrs_network(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("name", "vdsm_name", "ha_count", "mtu", "description"):
        if getattr(a, key, None) is not None:
            out[key] = getattr(a, key)
    lease = getattr(a, "dhcp_lease_time", None)
    if lease is not None:
        out["dhcp_lease_time"] = None if lease == _AGENT_DEFAULT else lease
    if getattr(a, "disable", False):
        out["admin_state_up"] = False
    if getattr(a, "dns_domain", None) is not None:
        out["dns_domain"] = a.dns_domain
    if getattr(a, "dns_service", None) is not None:
        out["dns_service"] = a.dns_service
    return out


def _attrs_subnet(a: argparse.Namespace, client: Client) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(a, "network", None):
        out["network_id"] = client.find("networks", "network", a.network)["id"]
    for key in ("cidr", "name", "description"):
        if getattr(a, key, None) is not None:
            out[key] = getattr(a, key)
    if a.gateway is not None:
        out["gateway_ip"] = None if a.gateway == "none" else a.gateway
    if a.allocation_pool:
        out["allocation_pools"] = a.allocation_pool
    if a.dns_nameserver:
        out["dns_nameservers"] = a.dns_nameserver
    if a.host_route:
        out["host_routes"] = [
            {"destination": r["destination"], "nexthop": r.get("gateway") or r.get("nexthop")}
            for r in a.host_route
        ]
    if a.dhcp is not None:
        out["enable_dhcp"] = a.dhcp
    return out


def _attrs_port(a: argparse.Namespace, client: Client) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(a, "network", None):
        out["network_id"] = client.find("networks", "network", a.network)["id"]
    for key in ("name", "mac_address", "device_id", "device_owner", "description", "dns_name"):
        if getattr(a, key, None) is not None:
            out[key] = getattr(a, key)
    opts = _dhcp_opts(a)
    if opts:
        out["extra_dhcp_opts"] = opts
    if a.host is not None:
        out["binding:host_id"] = a.host
    if a.fixed_ip:
        fixed = []
        for spec in a.fixed_ip:
            entry = {}
            if "subnet" in spec:
                entry["subnet_id"] = client.find("subnets", "subnet", spec["subnet"])["id"]
            if "ip_address" in spec:
                entry["ip_address"] = spec["ip_address"]
            fixed.append(entry)
        out["fixed_ips"] = fixed
    return out


def _not_placed(net: dict[str, Any], nets: list[dict[str, Any]]) -> str | None:
    """Why no host can serve the network, when the network itself says so."""
    if net["vdsm_name"] is None:
        candidate = networks.bridge_candidate(net["name"], net.get(networks.PHYSNET))
        holder = next((n["id"] for n in nets if candidate and n["vdsm_name"] == candidate), None)
        return networks.no_bridge_reason(net, holder)
    if not net["admin_state_up"]:
        return "administratively down"
    if not net["ha_count"]:
        return "HA count 0"
    return None


def placement(a: argparse.Namespace) -> int:
    """Which hosts' DHCP agents serve each network, and whether they are alive; for a
    network no host can serve, why (no bridge, down, HA count 0)."""
    client = Client(a.url, a.token)
    try:
        rows = []
        nets = client.request("GET", "/v2.0/networks")["networks"]
        for net in nets:
            agents = client.request("GET", f"/v2.0/networks/{net['id']}/dhcp-agents")["agents"]
            rows.append(
                {
                    "network": net["name"],
                    "id": net["id"],
                    "vdsm_name": net["vdsm_name"],
                    "ha_count": net["ha_count"],
                    "dhcp_lease_time": net.get("dhcp_lease_time"),
                    "dhcp_hosts": [
                        f"{x['host']} ({'alive' if x['alive'] else 'DOWN'})" for x in agents
                    ],
                    "not_served_because": _not_placed(net, nets),
                }
            )
    except ApiError as exc:
        print(f"Error: {exc}")
        return 1
    columns = [
        "network",
        "id",
        "vdsm_name",
        "ha_count",
        "dhcp_lease_time",
        "dhcp_hosts",
        "not_served_because",
    ]
    print(table.show_list(rows, columns, a.format))
    return 0


def lease_list(a: argparse.Namespace) -> int:
    """What the DHCP servers saw of each client (of a network), joined to its port."""
    client = Client(a.url, a.token)
    try:
        params: dict[str, str] = {}
        if a.network:
            params["network_id"] = client.find("networks", "network", a.network)["id"]
        if a.state:
            params["state"] = a.state
        rows = client.request("GET", "/v2.0/dhcp-leases", params=params)["dhcp_leases"]
    except ApiError as exc:
        print(f"Error: {exc}")
        return 1
    for row in rows:
        row["port_id"] = row["port_id"] or "(no port has this MAC)"
    columns = [
        "mac_address",
        "ip_address",
        "state",
        "host",
        "port_id",
        "last_seen",
        "expires_at",
        "client_hostname",
        "client_id",
    ]
    print(table.show_list(rows, columns, a.format))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pp = sub.add_parser("placement", help="which hosts serve DHCP for each network")
    _common(pp)
    pp.set_defaults(func=placement)
    lp = sub.add_parser("lease", help="what the DHCP servers saw of each client")
    lactions = lp.add_subparsers(dest="action", required=True)
    ll = lactions.add_parser("list")
    _common(ll)
    ll.add_argument("--network", help="only this network's (id or name)")
    ll.add_argument(
        "--state", choices=["offered", "bound", "nak", "released", "declined", "expired"]
    )
    ll.set_defaults(func=lease_list)
    for kind in ("network", "subnet", "port"):
        kp = sub.add_parser(kind, help=f"manage {PLURAL[kind]} through the REST API")
        actions = kp.add_subparsers(dest="action", required=True)
        for action in ("create", "list", "show", "set", "delete"):
            p = actions.add_parser(action)
            _common(p)
            p.set_defaults(func=run, kind=kind)
            if action in ("show", "set", "delete"):
                p.add_argument("ref", help=f"{kind} id or unique name")
            if action in ("create", "set"):
                _fields(kind, p, create=action == "create")
            if action == "list" and kind != "network":
                p.add_argument("--network", help="only this network's (id or name)")
            if action == "list" and kind == "port":
                p.add_argument("--device-id")
                p.add_argument("--mac-address")


def _fields(kind: str, p: argparse.ArgumentParser, create: bool) -> None:
    p.add_argument("--description")
    if kind == "network":
        p.add_argument(
            "name", nargs=None if create else "?", default=None
        ) if create else p.add_argument("--name")
        p.add_argument(
            "--vdsm-name",
            help="bridge name on the hosts (default: the name when it is a VDSM name; "
            "otherwise none, and no DHCP server until it is set)",
        )
        p.add_argument("--ha-count", type=int, help="hosts serving DHCP for it (default 1)")
        p.add_argument(
            "--dhcp-lease-time",
            type=_lease_time,
            metavar="SECONDS",
            help="DHCP lease time: 120 to 2147483647 seconds, or 'infinite'; "
            "'default' (or not given) uses the DHCP agent's [dhcp_agent] lease_time",
        )
        p.add_argument("--mtu", type=int)
        p.add_argument("--disable", action="store_true", help="admin_state_up false")
        p.add_argument(
            "--dns-domain",
            metavar="DOMAIN",
            help="DNS domain of its ports, ending with '.' (e.g. lab.example.org.); "
            "'' uses the engine's [dns] domain",
        )
        p.add_argument(
            "--dns-service",
            dest="dns_service",
            action="store_true",
            default=None,
            help="its DHCP servers answer DNS for its ports",
        )
        p.add_argument("--no-dns-service", dest="dns_service", action="store_false")
        return
    p.add_argument("--name")
    if kind == "subnet":
        if create:
            p.add_argument("--network", required=True, help="network id or name")
            p.add_argument("cidr", help="e.g. 10.0.0.0/24")
        p.add_argument("--gateway", help="gateway IP, or 'none' (default: first address)")
        p.add_argument("--allocation-pool", type=_kv, action="append", metavar="start=IP,end=IP")
        p.add_argument("--dns-nameserver", action="append", metavar="IP")
        p.add_argument(
            "--host-route", type=_kv, action="append", metavar="destination=CIDR,gateway=IP"
        )
        p.add_argument("--dhcp", dest="dhcp", action="store_true", default=None)
        p.add_argument("--no-dhcp", dest="dhcp", action="store_false")
        return
    if create:
        p.add_argument("--network", required=True, help="network id or name")
    p.add_argument("--mac-address")
    p.add_argument("--fixed-ip", type=_kv, action="append", metavar="subnet=ID,ip-address=IP")
    p.add_argument("--device-id")
    p.add_argument("--device-owner")
    p.add_argument("--host", help="binding:host_id")
    p.add_argument("--dns-name", metavar="NAME", help="hostname of the port; '' removes it")
    p.add_argument(
        "--dhcp-option",
        type=_dhcp_option,
        action="append",
        metavar="NAME=VALUE",
        help="a DHCP option of the port, e.g. bootfile-name=pxelinux.0 (repeatable; "
        "set merges it into the port's options)",
    )
    if not create:
        p.add_argument(
            "--remove-dhcp-option",
            action="append",
            metavar="NAME",
            help="remove this DHCP option of the port (repeatable)",
        )
    p.add_argument(
        "--ip-version",
        type=int,
        choices=[4, 6],
        default=4,
        help="IP version of the --dhcp-option and --remove-dhcp-option given (default 4)",
    )


def run(a: argparse.Namespace) -> int:
    client = Client(a.url, a.token)
    kind, plural = a.kind, PLURAL[a.kind]
    try:
        if a.action == "list":
            params: dict[str, Any] = {}
            if getattr(a, "network", None):
                params["network_id"] = client.find("networks", "network", a.network)["id"]
            for key in ("device_id", "mac_address"):
                if getattr(a, key, None):
                    params[key] = getattr(a, key)
            items = client.request("GET", f"/v2.0/{plural}", params=params)[plural]
            if kind == "port" and a.format == "table":
                items = [
                    dict(i, fixed_ips=[f["ip_address"] for f in i["fixed_ips"]]) for i in items
                ]
            print(table.show_list(items, COLUMNS[kind], a.format))
            return 0
        if a.action == "show":
            print(table.show_item(client.find(plural, kind, a.ref), a.format))
            return 0
        if a.action == "delete":
            item = client.find(plural, kind, a.ref)
            client.request("DELETE", f"/v2.0/{plural}/{item['id']}")
            print(f"Deleted {kind} {item['id']}")
            return 0
        attrs = (
            _attrs_network(a)
            if kind == "network"
            else _attrs_subnet(a, client)
            if kind == "subnet"
            else _attrs_port(a, client)
        )
        if a.action == "create":
            item = client.request("POST", f"/v2.0/{plural}", json={kind: attrs})[kind]
        else:
            ref = client.find(plural, kind, a.ref)["id"]
            item = client.request("PUT", f"/v2.0/{plural}/{ref}", json={kind: attrs})[kind]
        print(table.show_item(item, a.format))
        return 0
    except ApiError as exc:
        print(f"Error: {exc}")
        return 1
