"""A host's oVirt networks are VDSM's running configuration where VDSM runs: the
bridged (legacy switch) networks of /var/lib/vdsm/staging/netconf/nets/NAME whose
bridge exists, not every kernel bridge. The heartbeat reports them, the engine
places by them, the interface driver serves only them; without VDSM (the lab), the
kernel bridges."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from dhcp_driver.interface import OvirtInterfaceDriver
from dhcp_driver.mapping import write_mapping
from ipam.dhcp import placement
from ipam.lab.labhost import LabHost
from ipam.lab.netparts import Bridge, rand
from ipam.polling import wait_for
from tests.agentlab import host_heartbeats, reported_at
from vdsm_verb.host_service import bridges
from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import vdsm_networks


def save_netconf(netconf: Path, nets: dict[str, dict]) -> None:
    """Write a running configuration as VDSM saves one: a new directory, then the
    ``netconf`` symlink renamed over the old one."""
    real = netconf.with_name(f"netconf.{rand(8)}")
    (real / "nets").mkdir(parents=True)
    for name, attrs in nets.items():
        (real / "nets" / name).write_text(json.dumps(attrs, indent=4))
    link = netconf.with_name(f"{real.name}.ln")
    link.symlink_to(real)
    os.rename(link, netconf)


BRIDGED = {"bridged": True, "switch": "legacy", "nic": "eth0", "mtu": 1500, "stp": False}


def test_vdsm_networks_are_its_bridged_legacy_networks(tmp_path: Path) -> None:
    netconf = tmp_path / "netconf"
    assert vdsm_networks(str(netconf)) is None  # no VDSM here
    save_netconf(
        netconf,
        {
            "ovirtmgmt": BRIDGED,
            "vmnet": {"nic": "eth1"},  # VDSM's defaults: bridged, legacy
            "storage": {"bridged": False, "switch": "legacy", "nic": "eth2"},
            "ovsnet": {"bridged": True, "switch": "ovs", "nic": "eth3"},
            ".hidden": BRIDGED,
            "name-too-long-16": BRIDGED,
        },
    )
    (netconf / "nets" / "broken").write_text("{not json")
    (netconf / "nets" / "alist").write_text("[]")
    assert vdsm_networks(str(netconf)) == {"ovirtmgmt", "vmnet"}
    save_netconf(netconf, {})
    assert vdsm_networks(str(netconf)) == set()


@pytest.mark.root
def test_a_kernel_bridge_vdsm_does_not_know_is_not_reported_nor_placed(tmp_path: Path) -> None:
    known, stranger, ovs = Bridge(), Bridge(), Bridge()
    netconf = tmp_path / "netconf"
    save_netconf(
        netconf,
        {
            known.name: BRIDGED,
            ovs.name: dict(BRIDGED, switch="ovs"),  # an OVS network: not a Linux bridge of VDSM
            "nobridge": dict(BRIDGED, bridged=False),
            "gone": BRIDGED,  # in VDSM's configuration, its bridge missing: not carried
        },
    )
    ids = {br.name: str(uuid.uuid4()) for br in (known, stranger, ovs)}
    mapping = tmp_path / "dhcp-networks.json"
    write_mapping(mapping, [{"name": n, "id": i} for n, i in ids.items()])
    try:
        with_vdsm, without = set(bridges(str(netconf))), set(bridges(None))
        assert known.name in with_vdsm
        assert stranger.name not in with_vdsm and ovs.name not in with_vdsm
        assert not {"nobridge", "gone"} & with_vdsm
        assert {known.name, stranger.name, ovs.name} <= without  # no VDSM: kernel bridges
        assert set(bridges(str(tmp_path / "no-vdsm-here"))) >= {known.name, stranger.name}

        nets = [placement.Network(i, n, 1, True) for n, i in ids.items()]
        hosts = {"h1": placement.Host("h1", frozenset(with_vdsm), True)}
        assert placement.place(nets, hosts, {}) == {ids[known.name]: ["h1"]}

        # The interface driver agrees: it serves only what the host reports.
        driver = OvirtInterfaceDriver(str(mapping), f"t-{rand()}-", str(netconf))
        assert {n for n, i in ids.items() if driver.serves(i, n)} == {known.name}
        plain = OvirtInterfaceDriver(str(mapping), f"t-{rand()}-")
        assert {n for n, i in ids.items() if plain.serves(i, n)} == set(ids)
    finally:
        for br in (known, stranger, ovs):
            br.remove()


@pytest.mark.root
def test_the_host_service_reports_a_network_vdsm_sets_up_at_once(tmp_path: Path) -> None:
    """The bridge appears before VDSM saves its running configuration: the host
    service reports the network when the configuration names it, not a heartbeat
    later (heartbeats a minute apart here)."""
    url = f"filesystem://{tmp_path}/bus"
    segment = Bridge()
    netconf = tmp_path / "vdsm" / "netconf"
    netconf.parent.mkdir()
    save_netconf(netconf, {})
    vdsm = f"vb{rand(6)}"
    with host_heartbeats(url) as beats:
        host = LabHost(
            tmp_path,
            f"h{rand(4)}",
            url,
            {vdsm: segment.name},  # the bridge is there, VDSM does not list it yet
            extra_conf=f"[host]\nheartbeat_interval = 60\nvdsm_netconf_dir = {netconf}\n",
        )
        try:
            wait_for(lambda: beats, 20, "the first heartbeat")
            assert beats[0][1] == []
            save_netconf(netconf, {vdsm: BRIDGED})
            saved = time.monotonic()
            assert reported_at(beats, vdsm) - saved < 1.0  # not the periodic one, 60 s away
        finally:
            host.close()
            segment.remove()


@pytest.fixture(autouse=True)
def _root(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root (bridges, namespaces)")
