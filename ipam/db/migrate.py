"""Schema migrations: ``ovirt-ipam db upgrade`` applies them, the engine checks them."""

from __future__ import annotations

import logging
import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ipam.db.engine import Database

LOG = logging.getLogger(__name__)
SCRIPT_LOCATION = os.path.join(os.path.dirname(__file__), "migrations")


class SchemaNotCurrent(Exception):
    """The store's schema is not the one this code needs."""


def _config(db: Database | None, conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_config(None))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _pragma(conn: Connection, sql: str) -> None:
    """Run sql on conn's DBAPI connection, outside SQLAlchemy's transactions."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # None only once conn is closed
    dbapi_connection.execute(sql)


def upgrade(db: Database, revision: str = "head") -> None:
    before = current_revision(db)
    sqlite = db.dialect == "sqlite"
    with db.engine.connect() as conn:
        if sqlite:
            # SQLite alters a table by copying it (alembic's batch mode) and dropping the
            # old one; with foreign keys on, that drop would cascade to every subnet and
            # port. So: off for the migration (outside a transaction, where SQLite
            # allows it), checked before the commit, on again after (SQLite's procedure).
            _pragma(conn, "PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                command.upgrade(_config(db, conn), revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _pragma(conn, "PRAGMA foreign_keys=ON")
    LOG.info("Store schema upgraded from %s to %s", before or "empty", current_revision(db))


def check(db: Database) -> None:
    """Raise SchemaNotCurrent unless the store is at the head revision."""
    current, head = current_revision(db), head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"store schema is at {current or 'nothing (empty database)'}, this code needs "
            f"{head}: run 'ovirt-ipam db upgrade'"
        )
