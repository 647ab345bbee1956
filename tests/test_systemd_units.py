"""The systemd units in etc/systemd run the commands this package provides."""

from __future__ import annotations

import configparser
from pathlib import Path

from ipam.cli.main import build_parser
from vdsm_verb.service_manager import UNIT

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
    ]:
        argv = _unit(name)["Service"]["ExecStart"].split()
        assert argv[0].endswith("/ovirt-ipam") and argv[1] == command and command in commands
        assert argv[2:] == ["--config-file", "/etc/ovirt-ipam/ovirt-ipam.conf"]


def test_agent_unit_reloads_by_sighup_and_spares_dnsmasq() -> None:
    service = _unit(UNIT)["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "process"
