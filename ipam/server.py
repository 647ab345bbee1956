"""The engine process (``ovirt-ipam engine``): checks the store, serves the API."""

from __future__ import annotations

import logging

import uvicorn
from oslo_config import cfg

from ipam import config
from ipam.api.app import auth_plugin, create_app
from ipam.db import migrate
from ipam.db.engine import Database
from ipam.store import Store

LOG = logging.getLogger(__name__)


def open_store(conf: cfg.ConfigOpts) -> Store:
    """Connect and check the schema; an empty embedded SQLite store is initialised."""
    url = config.database_url(conf)
    db = Database(url, conf.database.max_retries, conf.database.pool_size)
    if not conf.database.connection and migrate.current_revision(db) is None:
        LOG.info("Initialising the embedded store %s", url)
        migrate.upgrade(db)
    migrate.check(db)
    return Store(db, conf.base_mac)


def run(conf: cfg.ConfigOpts) -> None:
    config.check_api_config(conf)
    store = open_store(conf)
    app = create_app(store, auth_plugin(conf), conf.api.max_request_body_size, conf.api.public_url)
    LOG.info(
        "Engine serving the API on http://%s:%d (auth_strategy=%s, store=%s)",
        conf.api.bind_host,
        conf.api.bind_port,
        conf.api.auth_strategy,
        store.db.engine.url.render_as_string(hide_password=True),
    )
    uvicorn.run(
        app,
        host=conf.api.bind_host,
        port=conf.api.bind_port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
