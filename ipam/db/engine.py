"""Connections to the IPAM store and transactions that retry lost races.

SQLite (the embedded default) runs in WAL mode; write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock, and queue
on a lock file beside the database (flock), so that with several processes on one
store (API workers, the CLI) the next writer starts the moment the last commits
instead of sleeping in SQLite's busy handler.
PostgreSQL runs at READ COMMITTED; races that the schema's constraints catch
(a unique violation, a serialization failure, a deadlock) roll back and the
whole transaction is retried, so concurrent engines never hand out an address
twice and never fail a request while free addresses remain.
"""

from __future__ import annotations

import fcntl
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


class WriteLock:
    """One SQLite writer at a time, across threads (a lock) and processes (an flock
    on ``path``): waiters are woken as soon as the writer before them commits, where
    SQLite's busy handler would sleep and back off (1, 2, 5 ... 100 ms). The file is
    opened per process (pid checked), never shared with a forked child, whose flock
    would then be the same lock as ours."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self.path is None:
            return None
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


def write_lock_path(url: str) -> str | None:
    """The lock file of a SQLite database file (None: in memory, one process)."""
    path = sa.engine.make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return os.path.abspath(path) + "-write.lock"


class Database:
    """The store's connection pool and its transaction runner."""

    def __init__(self, url: str, max_retries: int = 20, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        self.engine = create_engine(self.url, pool_size)
        self.max_retries = max_retries
        self.dialect = self.engine.dialect.name
        # SQLite has one writer: queue them (WriteLock).
        self._write_lock: WriteLock | None = None
        if self.dialect == "sqlite":
            self._write_lock = WriteLock(write_lock_path(self.url))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads. SQLite: one read transaction, a consistent snapshot.
        PostgreSQL: autocommit, since at READ COMMITTED every statement takes its own
        snapshot inside a transaction too, and BEGIN and COMMIT would only add two
        round trips to each read (about a tenth of the API's CPU per port create)."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                yield conn.execution_options(isolation_level="AUTOCOMMIT", ipam_readonly=True)
                return
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
                with self._write_lock.held(), self.engine.begin() as conn:
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
        if self._write_lock is not None:
            self._write_lock.close()
