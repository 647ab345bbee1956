"""The ``ovirt-ipam`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING

# A DHCP agent is told to re-read its mapping by SIGHUP, which may come while it is
# still starting (two Host.setDHCP calls in a row): SIGHUP's default action would end
# it. Ignored from here until Agent.run installs its handler; the agent reads the
# mapping only after that, so nothing is lost. (Its starter, the host service,
# ignores SIGHUP too, which its children inherit, closing even this window.)
if sys.argv[1:2] == ["dhcp-agent"]:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

from oslo_config import cfg
from sqlalchemy import exc as sa_exc

from ipam import config, log
from ipam.cli import admin, lab
from ipam.db.migrate import SchemaNotCurrent

if TYPE_CHECKING:
    from ipam.bus.messaging import Bus


def _load_conf(rest: list[str]) -> cfg.ConfigOpts:
    """oslo.config parses what argparse left: --config-file, --config-dir, ...

    The services' files (store, mapping, dnsmasq configuration, leases and logs, bus
    messages) are theirs alone: umask 077 for them and the processes they start."""
    os.umask(0o077)
    config.CONF(rest, project="ovirt-ipam", prog="ovirt-ipam")
    log.setup(config.CONF.debug)
    return config.CONF


def _engine(rest: list[str]) -> int:
    from ipam import server

    conf = _load_conf(rest)
    server.run(conf)
    return 0


def _bus(conf: cfg.ConfigOpts, name: str) -> Bus:
    """The message bus of [DEFAULT] transport_url and [bus], named for the broker's view."""
    from ipam import config

    return config.bus_from_config(conf, name)


def _dhcp_agent(rest: list[str]) -> int:
    from dhcp_driver import config as agent_config  # noqa: F401 (registers [dhcp_agent])
    from dhcp_driver.agent import Agent

    conf = _load_conf(rest)
    Agent(conf, _bus(conf, f"dhcp-agent@{conf.dhcp_agent.host}")).run()
    return 0


def _dhcp_cleanup(rest: list[str]) -> int:
    from dhcp_driver import config as agent_config  # noqa: F401 (registers [dhcp_agent])
    from dhcp_driver.agent import cleanup_unmapped

    return cleanup_unmapped(_load_conf(rest))


def _host(rest: list[str]) -> int:
    from vdsm_verb.host_service import HostService

    conf = _load_conf(rest)
    HostService(conf, _bus(conf, f"host@{conf.dhcp_agent.host}")).run()
    return 0


def _host_call(args: argparse.Namespace, rest: list[str]) -> int:
    from vdsm_verb import host_call

    conf = _load_conf(rest)
    bus = _bus(conf, "host-call")
    try:
        return host_call.main(bus, args.host, args.namespace, args.verb, args.params, args.timeout)
    finally:
        bus.close()


def _db(action: str, rest: list[str]) -> int:
    from ipam.db import migrate
    from ipam.db.engine import Database

    conf = _load_conf(rest)
    db = Database(config.database_url(conf), conf.database.max_retries)
    if action == "upgrade":
        migrate.upgrade(db)
        return 0
    migrate.check(db)
    print(f"store schema is current ({migrate.head_revision()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovirt-ipam", description="IP address management and DHCP for oVirt VM networks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "engine",
        help="run the engine: REST API and IPAM store",
        description="Options: --config-file, --config-dir (oslo.config).",
        add_help=False,
    )
    sub.add_parser(
        "dhcp-agent",
        help="run the DHCP agent of this host",
        description="Options: --config-file, --config-dir (oslo.config).",
        add_help=False,
    )
    sub.add_parser(
        "dhcp-cleanup",
        help="stop the DHCP servers of every network not in the mapping (after the "
        "agent stopped for Host.setDHCP with no networks)",
        description="Options: --config-file, --config-dir (oslo.config).",
        add_help=False,
    )
    sub.add_parser(
        "host",
        help="run the host service (Host.setDHCP over the bus, heartbeats)",
        description="Options: --config-file, --config-dir (oslo.config).",
        add_help=False,
    )
    hc = sub.add_parser(
        "host-call",
        help="call a host's verb, like vdsm-client",
        description="Example: ovirt-ipam host-call host1 Host setDHCP "
        'networks=\'[{"name": "ovirtmgmt", "id": "..."}]\' --config-file ...',
    )
    hc.add_argument("host")
    hc.add_argument("namespace", choices=["Host"])
    hc.add_argument("verb", choices=["setDHCP", "getDHCP"])
    hc.add_argument("params", nargs="*", metavar="name=value", help="JSON values")
    hc.add_argument("--timeout", type=float, default=60.0)
    db = sub.add_parser("db", help="store schema migrations")
    db.add_argument("action", choices=["upgrade", "check"])
    admin.add_parsers(sub)
    lab.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "engine":
            return _engine(rest)
        if args.command == "dhcp-agent":
            return _dhcp_agent(rest)
        if args.command == "dhcp-cleanup":
            return _dhcp_cleanup(rest)
        if args.command == "host":
            return _host(rest)
        if args.command == "host-call":
            return _host_call(args, rest)
        if args.command == "db":
            return _db(args.action, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except cfg.Error as exc:
        print(f"Error: configuration: {exc}", file=sys.stderr)
        return 2
    except SchemaNotCurrent as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except sa_exc.OperationalError as exc:
        print(f"Error: cannot use the store: {exc.orig}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
