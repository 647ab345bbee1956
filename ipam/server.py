"""The engine process (``ovirt-ipam engine``): checks the store, serves the API and
the bus (ipam.dhcp.bus_server), and publishes the store's changes to the agents.

With ``[api] workers`` above 1 the API is served by that many worker processes
(ipam.workers), each building its own store, bus and readiness (worker_app);
the engine process keeps what must run once: the bus server (acknowledgements,
heartbeats, syncs), the DHCP manager (and its leader lock) and the resync request
to the agents, and relays wake-ups to and from the workers (ipam.api.wakeups).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable

import uvicorn
from fastapi import FastAPI
from oslo_config import cfg

from ipam import config
from ipam import workers as api_workers
from ipam.api.app import auth_plugin, create_app
from ipam.api.metrics import Metrics
from ipam.api.wakeups import Hub, Link
from ipam.bus.messaging import Bus
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


def api_app(conf: cfg.ConfigOpts, store: Store, readiness: Readiness, metrics: Metrics) -> FastAPI:
    """The API as the engine process and each worker serve it."""
    return create_app(
        store,
        auth_plugin(conf),
        conf.api.max_request_body_size,
        conf.api.public_url,
        readiness,
        metrics,
    )


def worker_count(conf: cfg.ConfigOpts) -> int:
    """[api] workers, or a configuration error that says what is wanted."""
    try:
        return int(conf.api.workers)
    except cfg.ConfigFileValueError as exc:
        reason = str(exc).rsplit("is not valid: ", 1)[-1]
        raise cfg.Error(
            f"[api] workers: {reason}: it is how many API processes serve bind_port "
            "(1: the engine process itself)"
        ) from None


def make_manager(conf: cfg.ConfigOpts, store: Store, bus: Bus) -> DhcpManager | None:
    """The DHCP manager, if [dhcp] manage_placement (it runs where it holds the lock)."""
    if not conf.dhcp.manage_placement:
        return None
    return DhcpManager(
        store,
        bus,
        LeaderLock(store.db, conf.state_path),
        conf.dhcp.host_down_time,
        conf.dhcp.startup_grace,
        call_timeout=conf.dhcp.host_call_timeout,
        release_after=conf.dhcp.dhcp_port_release_after,
        load=conf.dhcp.placement_load,
    )


def open_bus(conf: cfg.ConfigOpts, name: str) -> Bus:
    try:
        return config.bus_from_config(conf, name)
    except ValueError as exc:
        raise cfg.Error(f"[DEFAULT] transport_url: {exc}") from None


def run(conf: cfg.ConfigOpts) -> None:
    config.check_api_config(conf)
    workers = worker_count(conf)
    if workers > 1:
        run_with_workers(conf, workers)
        return
    dns = dns_defaults(conf)
    db = open_database(conf)
    bus = open_bus(conf, "engine")
    notifier = Notifier(bus, db)
    store = Store(db, conf.base_mac, notifier=notifier, dns=dns)
    manager = make_manager(conf, store, bus)
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
    app = api_app(conf, store, readiness, metrics)
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
        uvicorn.run(app, **api_workers.uvicorn_options(conf))
    finally:
        shutdown()


class _RelayingNotifier(Notifier):
    """The engine process's notifier: when the bus server changes the agents'
    subscriptions, the workers forget their copies too (they publish the ports)."""

    def __init__(self, bus: Bus, db: Database, hub: Hub) -> None:
        super().__init__(bus, db)
        self.hub = hub

    def invalidate(self) -> None:
        super().invalidate()
        self.hub.subscriptions_changed()


def run_with_workers(conf: cfg.ConfigOpts, workers: int) -> None:
    """The engine process of [api] workers > 1: the bus server, the DHCP manager and
    the agents' resync here, the API in ``workers`` processes (worker_app)."""
    dns = dns_defaults(conf)
    db = open_database(conf)  # the schema checked (or made) once, before any worker
    bus = open_bus(conf, "engine")
    hub = Hub()
    notifier = _RelayingNotifier(bus, db, hub)
    store = Store(db, conf.base_mac, notifier=notifier, dns=dns)
    manager = make_manager(conf, store, bus)
    wake = manager.wake if manager is not None else None
    hub.on_manager = wake
    notifier.on_topology_change = wake
    bus_server = BusServer(store, bus, notifier, on_acks=hub.acks_recorded, on_bridges_changed=wake)
    tls = bool(conf.api.ssl_cert_file)
    LOG.info(
        "Engine process %d serving the API on %s://%s:%d with %d workers "
        "(auth_strategy=%s, store=%s, bus=%s)",
        os.getpid(),
        "https" if tls else "http",
        conf.api.bind_host,
        conf.api.bind_port,
        workers,
        conf.api.auth_strategy,
        db.engine.url.render_as_string(hide_password=True),
        bus.safe_url,
    )
    hub.start()
    bus_server.start()
    threading.Thread(
        target=notifier.engine_started, args=(time.time(),), name="engine-started", daemon=True
    ).start()
    if manager is not None:
        manager.start()
    try:
        api_workers.serve(conf, workers, hub.address)
    finally:
        if manager is not None:
            manager.stop()
        bus_server.stop()
        hub.stop()
        bus.close()
        db.dispose()
        LOG.info("Engine process %d stopped", os.getpid())


def worker_app(conf: cfg.ConfigOpts, hub: bytes, engine_pid: int) -> FastAPI:
    """The API of one worker process, built in that process after it started: its own
    store connections and bus connection (publishing), its own readiness, woken by
    the engine process when acknowledgements are recorded."""
    db = Database(config.database_url(conf), conf.database.max_retries, conf.database.pool_size)
    bus = open_bus(conf, "engine-api")
    notifier = Notifier(bus, db)
    store = Store(db, conf.base_mac, notifier=notifier, dns=dns_defaults(conf))
    link = Link(hub, engine_pid, on_subscriptions=notifier.invalidate)
    wake: Callable[[], None] = link.wake_manager
    notifier.on_topology_change = wake if conf.dhcp.manage_placement else None
    readiness = Readiness(
        store,
        conf.dhcp.ready_policy,
        conf.dhcp.ready_timeout,
        conf.dhcp.host_down_time,
        on_waiting=wake if conf.dhcp.manage_placement else None,
    )
    link.on_acks = readiness.acks_recorded
    metrics = Metrics(store, conf.dhcp.host_down_time, outbox_depth=notifier.outbox.held)
    app = api_app(conf, store, readiness, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        yield
        link.stop()
        bus.close()
        db.dispose()

    app.router.lifespan_context = lifespan
    link.start()
    threading.Thread(target=warm_port_list, args=(store,), name="port-list", daemon=True).start()
    LOG.info(
        "API worker %d of engine process %d started (store=%s, bus=%s)",
        os.getpid(),
        engine_pid,
        db.engine.url.render_as_string(hide_password=True),
        bus.safe_url,
    )
    return app
