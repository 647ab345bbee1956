"""The engine process (``ovirt-ipam engine``): checks the store, serves the API and
the bus (ipam.dhcp.bus_server), and publishes the store's changes to the agents."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator

import uvicorn
from oslo_config import cfg

from ipam import config
from ipam.api.app import auth_plugin, create_app
from ipam.api.metrics import Metrics
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.dhcp.bus_server import BusServer
from ipam.dhcp.leader import LeaderLock
from ipam.dhcp.manager import DhcpManager
from ipam.dhcp.notifier import Notifier
from ipam.dhcp.readiness import Readiness
from ipam.store import Store
from ipam.store.dns import DnsDefaults

LOG = logging.getLogger(__name__)


def open_database(conf: cfg.ConfigOpts) -> Database:
    """Connect and check the schema; an empty embedded SQLite store is initialised."""
    url = config.database_url(conf)
    db = Database(url, conf.database.max_retries, conf.database.pool_size)
    if not conf.database.connection and migrate.current_revision(db) is None:
        LOG.info("Initialising the embedded store %s", url)
        migrate.upgrade(db)
    migrate.check(db)
    return db


def dns_defaults(conf: cfg.ConfigOpts) -> DnsDefaults:
    """[dns] as the store applies it (the domain checked: ipam.config.dns_domain)."""
    return DnsDefaults(domain=config.dns_domain(conf), service=conf.dns.service_default)


def open_store(conf: cfg.ConfigOpts, notifier: Notifier | None = None) -> Store:
    """The store on a checked database (see open_database)."""
    dns = dns_defaults(conf)
    return Store(open_database(conf), conf.base_mac, notifier=notifier, dns=dns)


def warm_port_list(store: Store) -> None:
    """Encode the full port list now, not when oVirt engine first asks for it: with
    tens of thousands of ports that first build takes seconds (ipam.store.port_list)."""
    try:
        started = time.monotonic()
        pieces = store.port_list_body()
        LOG.info(
            "Port list kept: %d ports, %d bytes, in %.2f s",
            len(store.port_list),
            sum(map(len, pieces)),
            time.monotonic() - started,
        )
    except Exception as exc:  # not an error: the first list builds it
        LOG.warning("Building the port list failed (%s); the first list will build it", exc)


def run(conf: cfg.ConfigOpts) -> None:
    config.check_api_config(conf)
    dns = dns_defaults(conf)
    db = open_database(conf)
    try:
        bus = config.bus_from_config(conf, "engine")
    except ValueError as exc:
        raise cfg.Error(f"[DEFAULT] transport_url: {exc}") from None
    notifier = Notifier(bus, db)
    store = Store(db, conf.base_mac, notifier=notifier, dns=dns)
    manager = None
    if conf.dhcp.manage_placement:
        manager = DhcpManager(
            store,
            bus,
            LeaderLock(db, conf.state_path),
            conf.dhcp.host_down_time,
            conf.dhcp.startup_grace,
            call_timeout=conf.dhcp.host_call_timeout,
            release_after=conf.dhcp.dhcp_port_release_after,
            load=conf.dhcp.placement_load,
        )
    wake = manager.wake if manager is not None else None
    notifier.on_topology_change = wake
    readiness = Readiness(
        store,
        conf.dhcp.ready_policy,
        conf.dhcp.ready_timeout,
        conf.dhcp.host_down_time,
        on_waiting=wake,
    )
    bus_server = BusServer(
        store, bus, notifier, on_acks=readiness.acks_recorded, on_bridges_changed=wake
    )
    metrics = Metrics(
        store,
        conf.dhcp.host_down_time,
        outbox_depth=notifier.outbox.held,
        failovers=(lambda: manager.failovers) if manager is not None else None,
    )
    bus_server.on_leases = metrics.leases
    app = create_app(
        store,
        auth_plugin(conf),
        conf.api.max_request_body_size,
        conf.api.public_url,
        readiness,
        metrics,
    )
    tls = bool(conf.api.ssl_cert_file)
    LOG.info(
        "Engine serving the API on %s://%s:%d (auth_strategy=%s, store=%s, bus=%s)",
        "https" if tls else "http",
        conf.api.bind_host,
        conf.api.bind_port,
        conf.api.auth_strategy,
        store.db.engine.url.render_as_string(hide_password=True),
        bus.safe_url,
    )

    def shutdown() -> None:
        if manager is not None:
            manager.stop()
        bus_server.stop()
        bus.close()

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        # uvicorn re-raises SIGTERM once it has shut down, so stop the bus here.
        yield
        shutdown()
        LOG.info("Bus server stopped")

    app.router.lifespan_context = lifespan
    bus_server.start()
    threading.Thread(
        target=notifier.engine_started, args=(time.time(),), name="engine-started", daemon=True
    ).start()
    threading.Thread(target=warm_port_list, args=(store,), name="port-list", daemon=True).start()
    if manager is not None:
        manager.start()
    try:
        uvicorn.run(
            app,
            host=conf.api.bind_host,
            port=conf.api.bind_port,
            log_config=None,
            access_log=False,
            server_header=False,
            ssl_certfile=conf.api.ssl_cert_file if tls else None,
            ssl_keyfile=conf.api.ssl_key_file if tls else None,
        )
    finally:
        shutdown()
