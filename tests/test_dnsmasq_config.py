"""dnsmasq's configuration and host lines for IPv6 subnets, by Neutron's modes
(docs/ipv6-dataplane.md); what each does with real clients is in test_dhcpv6."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dhcp_driver import dnsmasq_config as cfg
from ipam.bus.contracts import FixedIp, NetworkInfo, NetworkState, PortState, SubnetState

NET, V4, V6 = (str(uuid.uuid4()) for _ in range(3))
MAC = "02:00:00:00:00:07"


def subnet6(address: str | None, ra: str | None, cidr: str = "2001:db8::/64") -> SubnetState:
    return SubnetState(
        id=V6,
        cidr=cidr,
        gateway_ip=None,
        enable_dhcp=True,
        dns_nameservers=["2001:db8::53"],
        host_routes=[],
        revision_number=1,
        ip_version=6,
        ipv6_address_mode=address,
        ipv6_ra_mode=ra,
    )


def conf(*subnets: SubnetState) -> list[str]:
    state = NetworkState(
        network=NetworkInfo(
            id=NET, vdsm_name="ovirtmgmt", mtu=1400, admin_state_up=True, revision_number=1
        ),
        subnets=list(subnets),
        ports=[],
        dhcp_port=None,
    )
    text = cfg.render(state, cfg.Paths(Path("/nonexistent")), "ovdX", 3600)
    return [line for line in text.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize(
    "address, ra, mode, enable_ra",
    [
        (None, None, "static", False),  # what the oVirt engine creates
        ("dhcpv6-stateful", None, "static", False),
        ("dhcpv6-stateful", "dhcpv6-stateful", "static", True),
        ("dhcpv6-stateless", None, "static", False),
        ("dhcpv6-stateless", "dhcpv6-stateless", "ra-stateless", False),
        ("slaac", "slaac", "ra-only", False),
        (None, "slaac", "static,slaac", False),
        (None, "dhcpv6-stateless", "static,slaac", False),
    ],
)
def test_each_mode_gets_its_range_and_advertisements_only_with_an_ra_mode(
    address: str | None, ra: str | None, mode: str, enable_ra: bool
) -> None:
    lines = conf(subnet6(address, ra))
    assert f"dhcp-range=set:s0,2001:db8::,{mode},64,3600s" in lines
    assert "dhcp-option=tag:s0,option6:dns-server,[2001:db8::53]" in lines
    assert ("enable-ra" in lines) is enable_ra
    assert ("ra-param=ovdX,mtu:1400,60,0" in lines) is (ra is not None)
    assert f"dhcp-duid={cfg.DUID_ENTERPRISE},{uuid.UUID(NET).bytes.hex(':')}" in lines


def test_slaac_without_advertisements_has_nothing_for_dnsmasq() -> None:
    lines = conf(subnet6("slaac", None))
    assert not [line for line in lines if line.startswith(("dhcp-range", "ra-param", "dhcp-duid"))]


def test_prefixes_dnsmasq_cannot_serve_are_left_out_or_served_without_advertisements(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert not [line for line in conf(subnet6(None, None, "2001:db8::/48")) if "dhcp-range" in line]
    assert "is /48" in caplog.text
    lines = conf(subnet6(None, "dhcpv6-stateful", "2001:db8::/120"))
    assert "dhcp-range=set:s0,2001:db8::,static,120,3600s" in lines
    assert "enable-ra" not in lines and not [x for x in lines if x.startswith("ra-param")]


def test_host_lines_one_family_each_and_a_known_line_first_for_options_only() -> None:
    kinds = {V4: cfg.DHCP4, V6: cfg.DHCP6}
    port = PortState(
        id=str(uuid.uuid4()),
        network_id=NET,
        mac_address=MAC,
        fixed_ips=[
            FixedIp(subnet_id=V4, ip_address="10.0.0.5"),
            FixedIp(subnet_id=V6, ip_address="2001:db8::5"),
        ],
        revision_number=1,
        device_owner="",
        admin_state_up=True,
    )
    # Every line sets the port's tag, which its options (opts.d) match.
    head = f"{MAC},set:port-{port.id}"
    assert cfg.host_entry(port, kinds) == f"{head},10.0.0.5\n{head},[2001:db8::5]\n"
    assert cfg.parse_entry(cfg.host_entry(port, kinds)) == [
        (MAC, "10.0.0.5"),
        (MAC, "[2001:db8::5]"),
    ]
    # Stateless: dnsmasq answers an information-request only for a MAC with an
    # address-less line; it goes first, as the last line of a MAC wins for DHCPv4.
    kinds[V6] = cfg.INFO6
    assert cfg.host_entry(port, kinds) == f"{head},{cfg.TOMBSTONE}\n{head},10.0.0.5\n"
    kinds[V6] = cfg.NONE
    assert cfg.host_entry(port, kinds) == f"{head},10.0.0.5\n"
