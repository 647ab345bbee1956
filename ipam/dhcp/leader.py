"""Exactly one engine runs the DHCP manager (DESIGN.md, Defaults and scale).

On PostgreSQL: a session-level advisory lock, held by a connection of its own;
the database frees it when that session ends, so a dead engine's lock passes to
another. On the embedded SQLite store (one machine): an flock on a file in the
state directory, freed by the kernel when the process dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ipam.db.engine import Database

LOG = logging.getLogger(__name__)
# An arbitrary 64-bit key, fixed for this project ("ovirt-ipam manager").
LOCK_KEY = 0x6F7669727449504D


class LeaderLock:
    def __init__(self, db: Database, state_path: str) -> None:
        self.db = db
        self.path = Path(state_path) / "dhcp-manager.lock"
        self._conn: Connection | None = None
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""
        if self.held():
            return True
        if self.db.dialect == "postgresql":
            conn = self.db.engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
            if got.scalar():
                conn.commit()
                self._conn = conn
                LOG.info("This engine runs the DHCP manager (advisory lock %#x)", LOCK_KEY)
                return True
            conn.close()
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        LOG.info("This engine runs the DHCP manager (lock file %s)", self.path)
        return True

    def held(self) -> bool:
        """Still ours? On PostgreSQL a lost connection means the lock is lost."""
        if self._fd is not None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1")).scalar()
            return True
        except sa.exc.DBAPIError:
            LOG.warning("Lost the DHCP manager lock: its database session ended")
            self._conn.invalidate()
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            # Not back to the pool, where the session (and the lock) would live on:
            # close the DBAPI connection, which ends the session and frees the lock.
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
