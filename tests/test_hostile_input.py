"""Hostile input (issue 7): names, options and ids with newlines, commas, '#', '=',
spaces, path separators, '..', NUL, very long strings, non-ASCII, shell and dnsmasq
syntax, tried against the REST API, the verb and the bus. Each is refused with a
clear error, or stored as text that never reaches a dnsmasq file, a command line,
an interface or namespace name, or a path: checked on a real agent and dnsmasq.

Also the bus's own faults: malformed, oversized, replayed and out-of-order messages
sent to a real agent are dropped or ignored with a log line, and revision numbers
keep a stale update from undoing a newer one."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import pytest
from pyroute2 import netns

from dhcp_driver.mapping import write_mapping
from ipam.bus import contracts as C
from ipam.bus import messaging
from ipam.polling import wait_for
from tests.faultlab import RecordingAgentService, record
from tests.test_api_bad_input import snapshot
from vdsm_verb.verb import DhcpVerb

HOSTILE: dict[str, str] = {
    "newline": "a\nb",
    "carriage return": "a\rb",
    "comma": "a,b",
    "hash": "#a",
    "equals": "a=b",
    "space": "a b",
    "slash": "a/b",
    "dot-dot": "..",
    "path traversal": "../../etc/passwd",
    "NUL": "a\x00b",
    "very long": "x" * 5000,
    "non-ASCII": "réseau-ñ",
    "dnsmasq option": "dhcp-option=3,10.99.0.1",
    "dnsmasq host line": "00:11:22:33:44:55,10.66.0.200",
    "shell": "$(touch /tmp/ovirt-ipam-pwned)",
    "command-line option": "--conf-file=/etc/passwd",
    "bracketed IPv6": "[fd67::1]",
    "IPv6 with a zone": "fd67::1%lo",
    "IPv6 host line": "00:11:22:33:44:55,[fd67::9]",
    "empty": "",
}
#: Values that must never appear, verbatim, where they could do harm.
NEEDLES = [v for v in HOSTILE.values() if len(v) >= 3 and v != "a b"]

# REST fields checked against a rule: anything hostile is refused (400).
VALIDATED = {
    "network.vdsm_name": lambda api, net, v: api.post(
        "/v2.0/networks", json={"network": {"name": "ok", "vdsm_name": v}}
    ),
    "port.mac_address": lambda api, net, v: api.post(
        "/v2.0/ports", json={"port": {"network_id": net, "mac_address": v}}
    ),
    "port.fixed_ips.ip_address": lambda api, net, v: api.post(
        "/v2.0/ports", json={"port": {"network_id": net, "fixed_ips": [{"ip_address": v}]}}
    ),
    "subnet.cidr": lambda api, net, v: api.post(
        "/v2.0/subnets", json={"subnet": {"network_id": net, "cidr": v}}
    ),
    "subnet.dns_nameservers": lambda api, net, v: api.post(
        "/v2.0/subnets",
        json={"subnet": {"network_id": net, "cidr": "10.67.0.0/24", "dns_nameservers": [v]}},
    ),
    "subnet.host_routes": lambda api, net, v: api.post(
        "/v2.0/subnets",
        json={
            "subnet": {
                "network_id": net,
                "cidr": "10.67.0.0/24",
                "host_routes": [{"destination": v, "nexthop": "10.67.0.1"}],
            }
        },
    ),
    "subnet.gateway_ip": lambda api, net, v: api.post(
        "/v2.0/subnets",
        json={"subnet": {"network_id": net, "cidr": "10.67.0.0/24", "gateway_ip": v}},
    ),
    "subnet6.cidr": lambda api, net, v: api.post(
        "/v2.0/subnets", json={"subnet": {"network_id": net, "cidr": v, "ip_version": 6}}
    ),
    **{
        f"subnet6.{field}": (
            lambda api, net, v, field=field, wrap=wrap: api.post(
                "/v2.0/subnets",
                json={
                    "subnet": {
                        "network_id": net,
                        "cidr": "fd67::/64",
                        "ip_version": 6,
                        field: [v] if wrap else v,
                    }
                },
            )
        )
        for field, wrap in (
            ("dns_nameservers", True),
            ("gateway_ip", False),
            ("ipv6_address_mode", False),
            ("ipv6_ra_mode", False),
        )
    },
    "network.mtu": lambda api, net, v: api.put(
        f"/v2.0/networks/{net}", json={"network": {"mtu": v}}
    ),
    # Names and DHCP options (issue 16): each checked against its rule.
    "network.dns_domain": lambda api, net, v: api.put(
        f"/v2.0/networks/{net}", json={"network": {"dns_domain": v}}
    ),
    "port.dns_name": lambda api, net, v: api.post(
        "/v2.0/ports", json={"port": {"network_id": net, "dns_name": v}}
    ),
    "port.extra_dhcp_opts.opt_name": lambda api, net, v: api.post(
        "/v2.0/ports",
        json={"port": {"network_id": net, "extra_dhcp_opts": [{"opt_name": v, "opt_value": "1"}]}},
    ),
    **{
        f"port.extra_dhcp_opts.{name}": (
            lambda api, net, v, name=name: api.post(
                "/v2.0/ports",
                json={
                    "port": {
                        "network_id": net,
                        "extra_dhcp_opts": [{"opt_name": name, "opt_value": v}],
                    }
                },
            )
        )
        for name in ("tftp-server", "server-ip-address", "ntp-server", "mtu")
    },
}
#: Values a validated field takes on purpose: gateway_ip "" is no gateway (oVirt's
#: Administration Portal sends a blank gateway box as "").
MEANINGFUL = {("subnet.gateway_ip", "empty"), ("subnet6.gateway_ip", "empty")}
#: dns_domain "" is no domain of its own, dns_name "" is no name (both as in Neutron).
MEANINGFUL |= {("network.dns_domain", "empty"), ("port.dns_name", "empty")}
# Free text in Neutron (names, device ids): kept as text, or refused when unstorable.
FREE_TEXT = ["name", "device_id", "device_owner", "description"]


@pytest.mark.root
def test_rest_api_refuses_or_contains_hostile_input(world_factory) -> None:  # type: ignore[no-untyped-def]
    world = world_factory()
    # Dual stack: every stored port's file holds an IPv6 line too.
    world.post("subnets", {"network_id": world.net_id, "cidr": "fd66::/64", "ip_version": 6})
    world.serve()
    world.agent.start()
    world.wait_serving()
    api, net = world.api, world.net_id

    refused = 0
    for field, send in VALIDATED.items():
        for label, value in HOSTILE.items():
            if (field, label) in MEANINGFUL:
                continue
            before = snapshot(api)
            resp = send(api, net, value)
            assert resp.status_code == 400, (field, label, resp.status_code, resp.text)
            assert "NeutronError" in resp.json(), (field, label)
            assert snapshot(api) == before, (field, label)
            refused += 1
    for label, value in HOSTILE.items():  # ids in paths are only looked up
        if value.strip("."):  # (a path of dots is resolved by the client, not sent)
            resp = api.get(f"/v2.0/ports/{quote(value, safe='')}")
            assert resp.status_code == 404, (label, resp.status_code)

    kept, stored = 0, []
    for field in FREE_TEXT:
        for label, value in HOSTILE.items():
            mac = f"02:00:5e:{len(stored) // 256:02x}:{len(stored) % 256:02x}:01"
            resp = api.post(
                "/v2.0/ports", json={"port": {"network_id": net, "mac_address": mac, field: value}}
            )
            if resp.status_code == 400:
                assert "NeutronError" in resp.json()
                refused += 1
                continue
            assert resp.status_code == 201, (field, label, resp.text)
            port = resp.json()["port"]
            assert port[field] == value  # kept as the text it is, byte for byte
            stored.append(port)
            kept += 1
    for port in stored:
        world.wait_active(port)

    _check_agent_files_and_names(world)
    vm_port = stored[0]
    ipv4 = next(f["ip_address"] for f in vm_port["fixed_ips"] if "." in f["ip_address"])
    assert world.lease(vm_port) == ipv4  # dnsmasq still serves, exactly
    record(
        "input",
        "REST API: hostile values in validated fields and in free text",
        cases=refused + kept,
        refused_400=refused,
        kept_as_text=kept,
        reached_dnsmasq_or_names=0,
        store_changed_by_refused=0,
    )


def _check_agent_files_and_names(world) -> None:  # type: ignore[no-untyped-def]
    """Nothing hostile in the agent's files, file names, dnsmasq command lines,
    namespace or interface names; hostsdir files hold only MAC,IPv4 or MAC,[IPv6]
    (canonical, in the network's subnets) or MAC,infinite."""
    state = world.tmp / f"agent-{world.agent.host}"
    line = re.compile(
        r"[0-9a-f]{2}(:[0-9a-f]{2}){5},(set:port-[0-9a-f-]{36},)?"
        r"(10\.66(\.\d{1,3}){2}|\[fd66::[0-9a-f]{1,4}\]|infinite)"
    )
    # opts.d: the port's hostname (option 12, a label or nothing) and allowed options
    # with values of safe characters only; dns.d: an address and a name.
    tag = r"tag:port-[0-9a-f-]{36}"
    opt_line = re.compile(
        rf"{tag},12(,[a-z0-9-]{{1,63}})?|{tag}(,tag:!?(ipxe|httpboot))*,"
        r"option6?:[a-z-]+,[A-Za-z0-9._~:/?&=+%@!$*()\[\],-]+"
    )
    dns_line = re.compile(r"[0-9a-f.:]+ [a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*")
    name = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|sentinel")
    files = [p for p in state.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text(errors="replace")
        for needle in NEEDLES:
            assert needle not in str(path), (needle, path)
            # A needle of several lines cannot be told from two honest lines (an
            # interface name ending in "a" above "bind-interfaces"): each line is
            # checked against its file's grammar below instead.
            assert "\n" in needle or "\r" in needle or needle not in text, (needle, path)
        grammar = {"hosts.d": line, "opts.d": opt_line, "dns.d": dns_line}.get(path.parent.name)
        if grammar is not None:
            assert name.fullmatch(path.name), path
            assert all(grammar.fullmatch(x) for x in text.splitlines()), (path, text)
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "dnsmasq" and any(str(state) in a for a in cmd):
            assert not any(n in a for n in NEEDLES for a in cmd), cmd
    mine = [n for n in netns.listnetns() if n.startswith(world.agent.prefix)]
    assert mine == [world.agent.prefix + world.net_id]


def test_verb_refuses_hostile_names_and_ids(tmp_path: Path) -> None:
    mapping = tmp_path / "dhcp-networks.json"
    good = {"name": "ovirtmgmt", "id": str(uuid.uuid4())}
    write_mapping(mapping, [good])
    before = mapping.read_bytes()
    service = RecordingAgentService()
    verb = DhcpVerb(str(mapping), service, lambda: service.calls.append("shutdown"))
    cases = 0
    for value in HOSTILE.values():
        for entry in ({"name": value, "id": good["id"]}, {"name": "ovirtmgmt", "id": value}):
            answer = verb.set_dhcp([entry])
            assert answer["status"]["code"] == 21, (entry, answer)
            assert "Invalid networks" in answer["status"]["message"]
            cases += 1
        answer = verb.set_dhcp([{"name": "ovirtmgmt", "id": good["id"], value: "x"}])
        assert answer["status"]["code"] == 21, (value, answer)  # no keys but name and id
        cases += 1
    assert mapping.read_bytes() == before
    assert service.calls == []
    record(
        "input",
        "Host.setDHCP: hostile network names, ids and keys",
        cases=cases,
        refused_code_21=cases,
        mapping_changed=0,
        agent_touched=0,
    )


def _hostile_bodies() -> list[tuple[str, dict[str, Any]]]:
    net, port = str(uuid.uuid4()), str(uuid.uuid4())
    out: list[tuple[str, dict[str, Any]]] = []
    good_port = {
        "id": port,
        "network_id": net,
        "mac_address": "02:00:00:00:00:01",
        "fixed_ips": [],
        "device_owner": "",
        "revision_number": 1,
        "admin_state_up": True,
    }
    good_fact = {
        "mac_address": "02:00:00:00:00:01",
        "ip_address": "10.0.0.5",
        "state": "nak",
        "seen_at": 1.0,
    }
    for value in HOSTILE.values():
        out += [
            ("port.update", {"port": good_port | {"dns_name": value}}),
            (
                "port.update",
                {
                    "port": good_port
                    | {"extra_dhcp_opts": [{"opt_name": "tftp-server", "opt_value": value}]}
                },
            ),
            (
                "port.update",
                {"port": good_port | {"extra_dhcp_opts": [{"opt_name": value, "opt_value": "x"}]}},
            ),
            (
                "lease.facts",
                {"host": "h1", "network_id": net, "facts": [good_fact | {"mac_address": value}]},
            ),
            (
                "lease.facts",
                {"host": "h1", "network_id": net, "facts": [good_fact | {"ip_address": value}]},
            ),
        ]
        out += [
            (
                "lease.facts",
                {"host": "h1", "network_id": net, "facts": [good_fact | {key: value}]},
            )
            for key in ("client_id", "client_hostname")
        ]
        if not value.isprintable() or len(value) > 255:
            out.append(
                (
                    "lease.facts",
                    {"host": "h1", "network_id": net, "facts": [good_fact | {"reason": value}]},
                )
            )
        out += [
            ("agent.heartbeat", {"host": value, "started_at": 1.0, "networks": []}),
            ("host.heartbeat", {"host": "h1", "started_at": 1.0, "bridges": [value]}),
            ("sync.request", {"host": value, "networks": [net]}),
            ("network.release", {"host": "h1", "network_id": value}),
            ("port.update", {"port": good_port | {"mac_address": value}}),
        ]
    return out


def test_bus_refuses_hostile_fields() -> None:
    cases = 0
    for type_, body in _hostile_bodies():
        raw = json.dumps(
            {
                "v": 1,
                "id": str(uuid.uuid4()),
                "type": type_,
                "sender": "x",
                "sent_at": 1.0,
                "body": body,
            }
        )
        with pytest.raises(C.ContractError):
            C.decode(raw.encode())
        cases += 1
    record(
        "input",
        "bus messages: hostile host names, VDSM names, ids, MACs",
        cases=cases,
        refused=cases,
    )


@pytest.mark.root
def test_agent_drops_malformed_oversized_replayed_and_stale_messages(world_factory) -> None:  # type: ignore[no-untyped-def]
    world = world_factory()
    world.serve()
    world.agent.start()
    world.wait_serving()
    url = world.transport_url
    queue = C.agent_queue(world.agent.host)

    def raw(payload: bytes) -> None:
        with messaging.connection(url) as conn:
            conn.Producer(serializer=None).publish(
                payload, exchange="", routing_key=queue, content_type="application/json"
            )

    port = world.port()
    world.wait_active(port)
    hostsfile = (
        world.tmp / f"agent-{world.agent.host}" / "dhcp" / world.net_id / "hosts.d" / port["id"]
    )
    first = hostsfile.read_text()

    raw(b"not json at all")
    raw(json.dumps({"v": 99, "type": "port.update", "body": {}}).encode())
    raw(b'{"v": 1, "type": "port.update", "body": ' + b" " * (C.MAX_MESSAGE_BYTES + 1) + b"{}}")
    wait_for(lambda: world.agent.logs().count("Dropped a malformed message") >= 3, 30, "3 drops")
    assert "too large" in world.agent.logs() or "bytes" in world.agent.logs()

    old_state = _port_state(world, port)
    moved = world.api.put(
        f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.66.0.150"}]}}
    ).json()["port"]
    world.wait_active(moved)
    newer = hostsfile.read_text()
    assert "10.66.0.150" in newer and newer != first
    stale = C.make("port.update", C.PortEvent(port=old_state), "engine")
    bus = messaging.Bus(url)
    bus.publish(queue, stale)  # out of order: the older revision after the newer
    bus.publish(queue, stale)  # and replayed
    current = C.make("port.update", C.PortEvent(port=_port_state(world, moved)), "engine")
    bus.publish(queue, current)
    bus.publish(queue, current)  # a replay of the current one changes nothing
    bus.close()
    marker = world.port()  # an event after them all: once ACTIVE, they were handled
    world.wait_active(marker)
    assert hostsfile.read_text() == newer
    assert world.agent.logs().count(f"ignoring stale port {port['id']}") == 2
    assert world.lease(moved) == "10.66.0.150"
    assert world.agent.proc.poll() is None
    record(
        "input",
        "bus messages to a real agent: malformed, wrong version, oversized, replayed, out of order",
        cases=7,
        dropped_with_log=3,
        stale_ignored=2,
        replay_harmless=2,
        agent_crashed=0,
    )


def _port_state(world, port: dict) -> C.PortState:  # type: ignore[no-untyped-def]
    from ipam.dhcp.notifier import port_state

    full = world.api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    return port_state(full)
