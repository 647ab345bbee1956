"""The bus's message contracts: round trips, and every kind of malformed message
refused with a clear ContractError."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from ipam.bus import contracts as C

NET = str(uuid.uuid4())
SUB = str(uuid.uuid4())
PORT = str(uuid.uuid4())


def port(**over: object) -> C.PortState:
    values: dict = {
        "id": PORT,
        "network_id": NET,
        "mac_address": "fa:16:3e:00:00:01",
        "fixed_ips": [C.FixedIp(subnet_id=SUB, ip_address="192.0.2.10")],
        "revision_number": 3,
        "device_owner": "oVirt",
        "admin_state_up": True,
    }
    values.update(over)
    return C.PortState(**values)


def subnet() -> C.SubnetState:
    return C.SubnetState(
        id=SUB,
        cidr="192.0.2.0/24",
        gateway_ip="192.0.2.1",
        enable_dhcp=True,
        dns_nameservers=["192.0.2.53"],
        host_routes=[C.HostRoute(destination="198.51.100.0/24", nexthop="192.0.2.254")],
        revision_number=1,
    )


EXAMPLES: list[tuple[str, object]] = [
    ("sync.request", C.SyncRequest(host="host-1.example", networks=[NET])),
    (
        "sync.reply",
        C.SyncReply(
            networks=[
                C.NetworkState(
                    network=C.NetworkInfo(
                        id=NET,
                        vdsm_name="ovirtmgmt",
                        mtu=1500,
                        admin_state_up=True,
                        revision_number=2,
                        dhcp_lease_time=3600,
                    ),
                    subnets=[subnet()],
                    ports=[port()],
                    dhcp_port=port(device_owner="network:dhcp"),
                )
            ],
            missing=[str(uuid.uuid4())],
        ),
    ),
    ("port.update", C.PortEvent(port=port())),
    (
        "port.update",
        C.PortEvent(
            port=port().model_copy(
                update={
                    "dns_name": "web-1",
                    "extra_dhcp_opts": [
                        C.DhcpOpt(opt_name="bootfile-name", opt_value="pxelinux.0"),
                        C.DhcpOpt(opt_name="ntp-server", opt_value="fd00::1", ip_version=6),
                    ],
                }
            )
        ),
    ),
    (
        "lease.facts",
        C.LeaseFacts(
            host="h1",
            network_id=NET,
            facts=[
                C.LeaseFact(
                    mac_address="02:00:00:00:00:01",
                    ip_address="10.0.0.5",
                    state="bound",
                    seen_at=1700000000.5,
                    expires_at=1700003600.5,
                    client_id="01:02:00:00:00:00:01",
                    client_hostname="vm-1.example.org",
                ),
                C.LeaseFact(
                    mac_address="02:00:00:00:00:02",
                    ip_address="10.0.0.6",
                    state="nak",
                    seen_at=1700000000.5,
                    reason="wrong address",
                ),
            ],
            unparsed=2,
            rebuilt=True,
        ),
    ),
    ("port.delete", C.PortEvent(port=port(fixed_ips=[]))),
    ("network.update", C.NetworkEvent(network_id=NET, revision_number=4)),
    ("network.delete", C.NetworkEvent(network_id=NET, revision_number=4)),
    ("engine.started", C.EngineStarted(started_at=1700000000.5)),
    ("subnet.update", C.SubnetEvent(network_id=NET, subnet_id=SUB, revision_number=1)),
    ("subnet.delete", C.SubnetEvent(network_id=NET, subnet_id=SUB, revision_number=1)),
    (
        "port.ack",
        C.PortAck(host="h1", network_id=NET, ports=[C.AckedPort(id=PORT, revision_number=3)]),
    ),
    (
        "agent.heartbeat",
        C.Heartbeat(
            host="h1",
            started_at=1700000000.5,
            networks=[
                C.ServedNetworkReport(id=NET, ports=12, dnsmasq="running", ack_lag_s=0.02),
                C.ServedNetworkReport(id=NET, ports=0, dnsmasq="starting"),
            ],
        ),
    ),
    ("network.release", C.NetworkRelease(host="h1", network_id=NET)),
    ("host.heartbeat", C.HostHeartbeat(host="h1", started_at=1.0, bridges=["ovirtmgmt"])),
    (
        "jsonrpc.request",
        C.JsonRpcRequest(jsonrpc="2.0", method="Host.setDHCP", params={"networks": []}, id=1),
    ),
    (
        "jsonrpc.reply",
        C.JsonRpcResponse(jsonrpc="2.0", id=1, error=C.JsonRpcError(code=21, message="bad")),
    ),
]


def test_every_type_has_an_example() -> None:
    assert {t for t, _ in EXAMPLES} == set(C.TYPES)


def test_names_and_options_are_left_out_at_their_defaults() -> None:
    """An agent from before names and options (extra="forbid") still takes every
    port and network that has none."""
    assert set(port().model_dump()) == {
        "id",
        "network_id",
        "mac_address",
        "fixed_ips",
        "revision_number",
        "device_owner",
        "admin_state_up",
    }
    info = C.NetworkInfo(
        id=NET, vdsm_name="ovirtmgmt", mtu=1500, admin_state_up=True, revision_number=1
    )
    assert "dns_domain" not in info.model_dump() and "dns_service" not in info.model_dump()
    named = info.model_copy(update={"dns_domain": "example.org.", "dns_service": True})
    assert named.model_dump()["dns_domain"] == "example.org."


@pytest.mark.parametrize(
    "bad",
    [
        {"dns_name": "Web-1"},  # not canonical (the API lower-cases)
        {"dns_name": "web_1"},
        {"dns_name": "5m"},  # dnsmasq would read a lease time
        {"dns_name": "a" * 64},
        {"extra_dhcp_opts": [{"opt_name": "67", "opt_value": "pxelinux.0"}]},  # an alias
        {"extra_dhcp_opts": [{"opt_name": "dhcp-script", "opt_value": "/bin/sh"}]},
        {"extra_dhcp_opts": [{"opt_name": "bootfile-name", "opt_value": "a\ndhcp-script=x"}]},
        {"extra_dhcp_opts": [{"opt_name": "tftp-server", "opt_value": "10.0.0.1,10.0.0.2"}]},
        {"extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "1500", "ip_version": 6}]},
    ],
)
def test_names_and_options_that_could_harm_a_dnsmasq_file_are_refused(bad: dict) -> None:
    data = port().model_dump() | bad
    with pytest.raises(C.ValidationError):
        C.PortState.model_validate(data)


@pytest.mark.parametrize(
    "bad",
    [
        {"state": "stolen"},
        {"mac_address": "02:00:00:00:00:0G"},
        {"ip_address": "10.0.0.5%lo"},
        {"reason": "line\nbreak"},
        {"seen_at": float("nan")},
        {"client_id": "01:02:00:00:00:00:0G"},
        {"client_id": "01-02"},
        {"client_id": ":".join(["ab"] * 256)},
        {"client_hostname": "vm;reboot"},
        {"client_hostname": "vm\nother"},
        {"client_hostname": "-vm"},
    ],
)
def test_lease_facts_are_checked(bad: dict) -> None:
    good = {"mac_address": "02:00:00:00:00:01", "ip_address": "10.0.0.5", "state": "bound"}
    with pytest.raises(C.ValidationError):
        C.LeaseFact.model_validate(good | {"seen_at": 1.0} | bad)


@pytest.mark.parametrize(("type_", "body"), EXAMPLES, ids=[t for t, _ in EXAMPLES])
def test_round_trip(type_: str, body: C.BaseModel) -> None:
    env = C.make(type_, body, "h1", reply_to=C.reply_queue("h1"), correlation_id=str(uuid.uuid4()))
    raw = C.encode(env)
    assert isinstance(raw, bytes)
    for form in (raw, raw.decode(), json.loads(raw)):
        env2, body2 = C.decode(form)
        assert env2 == env
        assert body2 == body
        assert type(body2) is type(body)


def test_names() -> None:
    assert C.VERSION == 1
    assert C.ENGINE_QUEUE == "ovirt-ipam.engine"
    assert C.agent_queue("h1") == "ovirt-ipam.agent.h1"
    assert C.reply_queue("h1.example") == "ovirt-ipam.reply.h1.example"
    assert C.validate_host("a" * 63) == "a" * 63
    for bad in ("", "../x", ".hidden", "-x", "a/b", "a" * 64, "a b", "h\n", "é"):
        with pytest.raises(C.ContractError, match="invalid host name"):
            C.validate_host(bad)
        with pytest.raises(C.ContractError):
            C.agent_queue(bad)


def test_make_refuses_a_body_of_another_type() -> None:
    with pytest.raises(C.ContractError, match="carries a PortEvent, not a NetworkEvent"):
        C.make("port.update", C.NetworkEvent(network_id=NET, revision_number=1), "h1")
    with pytest.raises(C.ContractError, match="unknown message type"):
        C.make("port.frobnicate", C.PortEvent(port=port()), "h1")


def good() -> dict:
    return json.loads(C.encode(C.make("port.update", C.PortEvent(port=port()), "h1")))


def with_port(**over: object) -> dict:
    msg = good()
    msg["body"]["port"].update(over)
    return msg


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "message is not valid JSON"),
        (b"\xff\xfe", "message is not valid JSON"),
        (b'{"v": NaN}', "message is not valid JSON"),
        (b"[1, 2]", "message is a JSON list, not an object"),
        ({**good(), "v": 2}, r"unsupported message version 2 \(this side speaks 1\)"),
        ({**good(), "type": "port.frobnicate"}, "unknown message type 'port.frobnicate'"),
        ({**good(), "id": "1234"}, "invalid envelope: id: .*not a canonical"),
        ({**good(), "extra": 1}, "invalid envelope: extra: unexpected field"),
        (
            {k: v for k, v in good().items() if k != "body"},
            "invalid envelope: body: Field required",
        ),
        ({**good(), "reply_to": "../../etc"}, "invalid envelope: reply_to: .*invalid queue name"),
        ({**good(), "sender": "h1\nforged log line"}, "invalid envelope: sender: .*printable"),
        ({**good(), "sent_at": "now"}, "invalid envelope: sent_at: Input should be a valid number"),
        (
            {**good(), "body": {**good()["body"], "colour": "red"}},
            "invalid port.update body: colour: unexpected field",
        ),
        (with_port(id="not-a-uuid"), "invalid port.update body: port.id: .*not a canonical"),
        (
            with_port(id=PORT.upper()),
            "invalid port.update body: port.id: .*not a canonical",
        ),
        (
            with_port(mac_address="FA:16:3E:00:00:01"),
            "invalid port.update body: port.mac_address: .*lower-case colon form",
        ),
        (
            with_port(mac_address="fa:16:3e:00:00:01\n"),
            "invalid port.update body: port.mac_address",
        ),
        (
            with_port(fixed_ips=[{"subnet_id": SUB, "ip_address": "192.0.2.300"}]),
            "invalid port.update body: port.fixed_ips.0.ip_address: .*not an IP address",
        ),
        (
            with_port(fixed_ips=[{"subnet_id": SUB, "ip_address": "2001:DB8::5"}]),
            "invalid port.update body: port.fixed_ips.0.ip_address: .*not an IP address in canon",
        ),
        (
            with_port(fixed_ips=[{"subnet_id": SUB, "ip_address": "2001:db8::5%eth0"}]),
            "invalid port.update body: port.fixed_ips.0.ip_address: .*zone is not allowed",
        ),
        (
            with_port(fixed_ips=[{"subnet_id": SUB, "ip_address": "2001:db8::5]\nx"}]),
            "invalid port.update body: port.fixed_ips.0.ip_address: .*not an IP address",
        ),
        (with_port(revision_number="3"), "port.revision_number: Input should be a valid integer"),
        (with_port(admin_state_up=1), "port.admin_state_up: Input should be a valid boolean"),
        (
            {**good(), "type": "network.release", "body": {"host": "../x", "network_id": NET}},
            "invalid network.release body: host: .*invalid host name '../x'",
        ),
        (
            {**good(), "type": "sync.request", "body": {"host": "h1", "networks": ["x"]}},
            "invalid sync.request body: networks.0: .*not a canonical",
        ),
        (
            {**good(), "type": "port.update", "body": {}},
            "invalid port.update body: port: Field required",
        ),
        (
            {
                **good(),
                "type": "agent.heartbeat",
                "body": {
                    "host": "h1",
                    "started_at": 1.0,
                    "networks": [{"id": NET, "ports": 1, "dnsmasq": "exploded"}],
                },
            },
            "invalid agent.heartbeat body: networks.0.dnsmasq: Input should be 'running'",
        ),
    ],
)
def test_malformed_messages_raise_a_clear_contract_error(raw: object, reason: str) -> None:
    if isinstance(raw, dict):
        forms: list = [raw, json.dumps(raw).encode()]
    else:
        forms = [raw]
    for form in forms:
        with pytest.raises(C.ContractError, match=reason):
            C.decode(form)


def test_oversized_message_is_refused_before_parsing() -> None:
    raw = b" " * (C.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(C.ContractError, match=r"message too large: 67108865 bytes"):
        C.decode(raw)


def test_list_sizes_are_bounded() -> None:
    msg = {**good(), "type": "sync.request"}
    msg["body"] = {"host": "h1", "networks": [NET] * (C.MAX_NETWORKS + 1)}
    with pytest.raises(C.ContractError, match="networks: List should have at most 10000"):
        C.decode(msg)


def test_contract_error_is_a_value_error() -> None:
    assert issubclass(C.ContractError, ValueError)


def sync_reply_with(**network: object) -> dict:
    """A sync.reply whose one network's NetworkInfo has these fields (others valid)."""
    info = {
        "id": NET,
        "vdsm_name": "ovirtmgmt",
        "mtu": 1500,
        "admin_state_up": True,
        "revision_number": 2,
        **network,
    }
    body = {
        "networks": [{"network": info, "subnets": [], "ports": [], "dhcp_port": None}],
        "missing": [],
    }
    return {**good(), "type": "sync.reply", "body": body}


@pytest.mark.parametrize("seconds", [None, -1, 120, 86400, 2**31 - 1])
def test_network_dhcp_lease_time_round_trips(seconds: int | None) -> None:
    _, body = C.decode(sync_reply_with(dhcp_lease_time=seconds))
    assert body.networks[0].network.dhcp_lease_time == seconds
    info = C.NetworkInfo(
        id=NET,
        vdsm_name="n",
        mtu=1500,
        admin_state_up=True,
        revision_number=1,
        dhcp_lease_time=seconds,
    )
    assert info.dhcp_lease_time == seconds


def test_network_dhcp_lease_time_defaults_to_the_agents() -> None:
    """A NetworkInfo without the field (an engine from before it) means the default."""
    _, body = C.decode(sync_reply_with())
    assert body.networks[0].network.dhcp_lease_time is None


@pytest.mark.parametrize(
    "bad", [0, 1, 119, -2, -120, 2**31, 2**64, True, False, 600.0, 1.5, "600", "infinite", [600]]
)
def test_network_dhcp_lease_time_out_of_contract_is_refused(bad: object) -> None:
    with pytest.raises(C.ContractError, match=r"networks\.0\.network\.dhcp_lease_time"):
        C.decode(sync_reply_with(dhcp_lease_time=bad))
    with pytest.raises(ValueError, match="dhcp_lease_time"):
        C.NetworkInfo(
            id=NET,
            vdsm_name="n",
            mtu=1500,
            admin_state_up=True,
            revision_number=1,
            dhcp_lease_time=bad,
        )
    assert not C.is_lease_time(bad)


def test_lease_time_rule_is_stated() -> None:
    with pytest.raises(C.ContractError, match=r"from 120 to 2147483647"):
        C.decode(sync_reply_with(dhcp_lease_time=60))
    assert (C.LEASE_TIME_INFINITE, C.LEASE_TIME_MIN, C.LEASE_TIME_MAX) == (-1, 120, 2**31 - 1)


def test_default_lease_time_is_left_off_the_wire() -> None:
    """None is not sent, so agents from before the field still take such networks."""
    info = {"id": NET, "vdsm_name": "n", "mtu": 1500, "admin_state_up": True}
    unset = C.NetworkInfo(**info, revision_number=1)
    assert "dhcp_lease_time" not in unset.model_dump(mode="json")
    assert "dhcp_lease_time" not in unset.model_dump_json()
    state = C.NetworkState(network=unset, subnets=[], ports=[], dhcp_port=None)
    env = C.make("sync.reply", C.SyncReply(networks=[state], missing=[]), "engine")
    assert "dhcp_lease_time" not in env.body["networks"][0]["network"]
    assert C.decode(C.encode(env))[1].networks[0].network == unset
    infinite = C.NetworkInfo(**info, revision_number=2, dhcp_lease_time=-1)
    assert infinite.model_dump(mode="json")["dhcp_lease_time"] == -1


def _subnet(**changes: object) -> dict:
    body = {
        "id": SUB,
        "cidr": "2001:db8::/64",
        "gateway_ip": "2001:db8::1",
        "enable_dhcp": True,
        "dns_nameservers": ["2001:db8::53"],
        "host_routes": [],
        "revision_number": 1,
        "ip_version": 6,
        "ipv6_address_mode": "dhcpv6-stateless",
        "ipv6_ra_mode": "dhcpv6-stateless",
    }
    return {**body, **changes}


def test_an_ipv6_subnet_travels_with_its_modes_and_an_ipv4_one_as_before() -> None:
    six = C.SubnetState(**_subnet())
    assert C.SubnetState.model_validate(six.model_dump()) == six
    four = C.SubnetState(
        **_subnet(
            cidr="10.0.0.0/24",
            gateway_ip=None,
            dns_nameservers=[],
            ip_version=4,
            ipv6_address_mode=None,
            ipv6_ra_mode=None,
        )
    )
    # What an agent from before IPv6 (extra fields forbidden) takes unchanged.
    assert set(four.model_dump()) == {
        "id",
        "cidr",
        "gateway_ip",
        "enable_dhcp",
        "dns_nameservers",
        "host_routes",
        "revision_number",
    }


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"cidr": "2001:db8::1/64"}, "not a CIDR"),
        ({"cidr": "2001:DB8::/64"}, "canonical"),
        ({"cidr": "2001:db8::%eth0/64"}, "zone"),
        ({"gateway_ip": "10.0.0.1"}, "more than one IP version"),
        ({"dns_nameservers": ["10.0.0.53"]}, "more than one IP version"),
        ({"ip_version": 4}, "more than one IP version"),
        ({"ipv6_address_mode": "dhcpv6"}, "ipv6_address_mode"),
        ({"ipv6_ra_mode": "slaac\nenable-ra"}, "ipv6_ra_mode"),
        (
            {"cidr": "10.0.0.0/24", "gateway_ip": None, "dns_nameservers": [], "ip_version": 4},
            "IPv6 modes on an IPv4 subnet",
        ),
    ],
)
def test_a_subnet_of_mixed_families_or_unknown_modes_is_refused(changes: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        C.SubnetState(**_subnet(**changes))


def test_a_fact_without_client_details_is_sent_as_before() -> None:
    """An engine that predates client_id and client_hostname forbids unknown keys:
    a fact without them must not carry them, even as null."""
    fact = C.LeaseFact(
        mac_address="02:00:00:00:00:01", ip_address=None, state="released", seen_at=1.0
    )
    assert "client_id" not in fact.model_dump() and "client_hostname" not in fact.model_dump()


@pytest.mark.parametrize("lag", [-0.5, float("nan"), float("inf"), "1"])
def test_ack_lag_is_a_finite_non_negative_number(lag: object) -> None:
    with pytest.raises(C.ValidationError):
        C.ServedNetworkReport(id=NET, ports=1, dnsmasq="running", ack_lag_s=lag)  # type: ignore[arg-type]
    report = C.ServedNetworkReport(id=NET, ports=1, dnsmasq="running")
    assert "ack_lag_s" not in report.model_dump()  # as agents sent it before the field
