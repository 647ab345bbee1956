"""Connections to the IPAM store and transactions that retry lost races.

SQLite (the embedded default) runs in WAL mode; write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock.
PostgreSQL runs at READ COMMITTED; races that the schema's constraints catch
(a unique violation, a serialization failure, a deadlock) roll back and the
whole transaction is retried, so concurrent engines never hand out an address
twice and never fail a request while free addresses remain.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from ipam.exceptions import RetryLimitExceeded

LOG = logging.getLogger(__name__)
T = TypeVar("T")

_PG_RETRYABLE = {"40001", "40P01", "23505", "55P03"}  # serialization, deadlock, unique, lock


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here, the driver this project installs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, pool_size: int = 5) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _setup_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get("ipam_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_retryable(error: exc.DBAPIError) -> bool:
    """A lost race rather than a bad request: worth running the transaction again."""
    if isinstance(error, exc.IntegrityError):
        return True  # the request's own checks passed, so a concurrent writer won
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code in _PG_RETRYABLE:
        return True
    msg = str(error.orig).lower()
    return "database is locked" in msg or "deadlock" in msg


class Database:
    """The store's connection pool and its transaction runner."""

    def __init__(self, url: str, max_retries: int = 20, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        self.engine = create_engine(self.url, pool_size)
        self.max_retries = max_retries
        self.dialect = self.engine.dialect.name
        # SQLite has one writer; queueing this process's writers on a lock wakes them
        # as soon as the writer before them commits, where SQLite's busy handler
        # would sleep and back off.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(ipam_readonly=True)
            with conn.begin():
                yield conn

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run fn in one transaction; retry it whole when it loses a race."""
        for attempt in range(1, self.max_retries + 1):
            try:
                if self._write_lock is None:
                    with self.engine.begin() as conn:
                        return fn(conn)
                with self._write_lock, self.engine.begin() as conn:
                    return fn(conn)
            except exc.DBAPIError as error:
                if error.connection_invalidated and attempt < self.max_retries:
                    LOG.warning("Store connection lost, retrying (attempt %d)", attempt)
                elif not is_retryable(error) or attempt == self.max_retries:
                    if is_retryable(error):
                        raise RetryLimitExceeded(
                            f"Transaction still conflicting after {attempt} attempts"
                        ) from error
                    raise
                LOG.debug("Transaction lost a race (attempt %d): %s", attempt, error.orig)
                time.sleep(random.uniform(0, 0.002 * attempt))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
