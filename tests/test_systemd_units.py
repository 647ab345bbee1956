"""The systemd units in etc/systemd run the commands this package provides."""

from __future__ import annotations

import configparser
from pathlib import Path

from ipam.cli.main import build_parser
from vdsm_verb.service_manager import UNIT
from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import CLEANUP_UNIT

UNITS = Path(__file__).resolve().parent.parent / "etc" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_units_start_existing_subcommands() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name, command in [
        ("ovirt-ipam-engine.service", "engine"),
        ("ovirt-ipam-host.service", "host"),
        (UNIT, "dhcp-agent"),
        (CLEANUP_UNIT, "dhcp-cleanup"),
    ]:
        argv = _unit(name)["Service"]["ExecStart"].split()
        assert argv[0].endswith("/ovirt-ipam") and argv[1] == command and command in commands
        assert argv[2:] == ["--config-file", "/etc/ovirt-ipam/ovirt-ipam.conf"]


def test_agent_unit_reloads_by_sighup_and_spares_dnsmasq() -> None:
    service = _unit(UNIT)["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "process"


def test_cleanup_unit_is_a_oneshot_after_the_agent() -> None:
    """setDHCP with no networks stops the agent, then starts this unit (and waits for
    it): the DHCP servers the stopped agent left are stopped."""
    unit = _unit(CLEANUP_UNIT)
    assert unit["Service"]["Type"] == "oneshot"
    assert UNIT in unit["Unit"]["After"].split()
    assert "Install" not in unit  # never enabled: run by the verb only


def test_agent_starts_after_vdsm_restored_the_bridges() -> None:
    assert "vdsm-network.service" in _unit(UNIT)["Unit"]["After"].split()
