"""The unfiltered port list, kept encoded and brought up to date from the database.

oVirt engine lists all ports (``GET /v2.0/ports``, no query) on every vNIC allocate
and deallocate. Rendering tens of thousands of ports each time cost a second of the
API's CPU, so the encoded answer is kept: one JSON fragment per port, in the list's
order, and the body they make.

Whether the body is current comes from the database alone, so it holds with several
engines on one store and with any writer: triggers (migration 0004) advance the
'ports' counter in ``change_counters`` with every committed change of a port or of
its addresses, and record in ``port_changes`` each changed port with the counter's
value (a network whose DNS domain changes rewrites its ports' rows, whose
dns_assignment shows it). A request reads the counter (one row); when the body was
built at that value it is the answer, else the ports changed since are read again
and re-encoded. The counter, the change log and the ports are read in one snapshot (SQLite's read
transaction, PostgreSQL's REPEATABLE READ), so the body is exactly the store at the
value it is kept for, and a request gets a body read after it arrived: a change
committed before a list, by this engine or another, is always in it.

The change log keeps the last ``keep`` changes; a list that fell further behind (or
a first list) reads every port. Writes that skip triggers (TRUNCATE, triggers
disabled) are not seen until the next change: the store is never written that way.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ipam.db.engine import Database
from ipam.db.schema import change_counters, port_changes
from ipam.store import ports
from ipam.store.dns import DnsDefaults

LOG = logging.getLogger(__name__)

_counter = sa.select(change_counters.c.n, change_counters.c.pruned).where(
    change_counters.c.name == "ports"
)
_changed_since = sa.select(port_changes.c.port_id).where(port_changes.c.n > sa.bindparam("n"))
CHUNK = 500  # ports read by id per statement
BLOCK = 256  # ports per block of the kept list (a block is split at twice that)
HEAD, TAIL = b'{"ports":[', b"]}"


def encode(item: dict[str, Any]) -> bytes:
    """JSON exactly as the API's JSONResponse renders it (compact, UTF-8)."""
    return json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class _Block:
    """Consecutive ports of the list: their order keys, their JSON, and that JSON
    joined (None until asked for again after a change)."""

    __slots__ = ("items", "joined", "keys")

    def __init__(self, keys: list[tuple[str, str]], items: list[bytes]) -> None:
        self.keys, self.items = keys, items
        self.joined: bytes | None = None


class PortList:
    def __init__(self, db: Database, keep: int = 100_000, dns: DnsDefaults | None = None) -> None:
        self.db = db
        self.keep = keep
        self.dns = dns or DnsDefaults()
        self._lock = threading.Lock()  # one refresh at a time
        self._kept: tuple[int, tuple[bytes, ...]] | None = None  # (counter value, body at it)
        self._blocks: list[_Block] = []
        self._firsts: list[tuple[str, str]] = []  # the first key of each block
        self._key_of: dict[str, tuple[str, str]] = {}  # port id -> its order key

    def body(self) -> tuple[bytes, ...]:
        """``{"ports": [...]}`` of every port, as committed when this was called, in
        pieces (joined, they are the body): a change re-encodes one port and re-joins
        one block of them, where a single body would be copied whole."""
        kept = self._kept
        if kept is not None and kept[0] == self._counter_now():
            return kept[1]
        with self._lock:
            try:
                return self._refresh()
            except BaseException:
                self._forget()  # the next list reads every port again
                raise

    def __len__(self) -> int:
        return len(self._key_of)

    def _counter_now(self) -> int:
        with self.db.read() as conn:
            return conn.execute(_counter).one().n

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction whose statements all see the same committed state."""
        with self.db.engine.connect() as conn:
            options: dict[str, Any] = {"ipam_readonly": True}
            if self.db.dialect == "postgresql":
                options["isolation_level"] = "REPEATABLE READ"
            conn = conn.execution_options(**options)
            with conn.begin():
                yield conn

    def _refresh(self) -> tuple[bytes, ...]:
        with self._snapshot() as conn:
            n, pruned = conn.execute(_counter).one()
            kept = self._kept
            if kept is not None and kept[0] == n:
                return kept[1]  # brought up to date while this request waited
            changed = None
            if kept is not None and pruned <= kept[0] < n:
                changed = conn.execute(_changed_since, {"n": kept[0]}).scalars().all()
            if changed is None or len(changed) > max(CHUNK, len(self) // 4):
                self._read_all(conn)
            else:
                for start in range(0, len(changed), CHUNK):
                    self._update(conn, changed[start : start + CHUNK])
        pieces = [HEAD]
        for i, block in enumerate(self._blocks):
            if block.joined is None:
                block.joined = b",".join(block.items)
            pieces += (b",", block.joined) if i else (block.joined,)
        pieces.append(TAIL)
        body = tuple(pieces)
        self._kept = (n, body)
        if n - pruned > 2 * self.keep:
            self._prune(n - self.keep)
        return body

    def _forget(self) -> None:
        self._kept, self._blocks, self._firsts, self._key_of = None, [], [], {}

    def _read_all(self, conn: Connection) -> None:
        listed = ports.listed(conn, self.dns)
        self._forget()
        for start in range(0, len(listed), BLOCK):
            part = listed[start : start + BLOCK]
            self._blocks.append(_Block([k for k, _ in part], [encode(i) for _, i in part]))
            self._firsts.append(part[0][0])
        self._key_of = {key[1]: key for key, _ in listed}

    def _update(self, conn: Connection, ids: Sequence[str]) -> None:
        """Re-read the ports of ids: changed, added or (not found) deleted."""
        for port_id in ids:
            key = self._key_of.pop(port_id, None)
            if key is not None:
                self._remove(key)
        for key, item in ports.listed(conn, self.dns, ids):
            self._insert(key, encode(item))
            self._key_of[key[1]] = key

    def _block_of(self, key: tuple[str, str]) -> int:
        return max(0, bisect.bisect_right(self._firsts, key) - 1)

    def _insert(self, key: tuple[str, str], item: bytes) -> None:
        if not self._blocks:
            self._blocks.append(_Block([], []))
            self._firsts.append(key)
        i = self._block_of(key)
        block = self._blocks[i]
        j = bisect.bisect_left(block.keys, key)
        block.keys.insert(j, key)
        block.items.insert(j, item)
        block.joined = None
        self._firsts[i] = block.keys[0]
        if len(block.keys) > 2 * BLOCK:  # split it in two
            half = _Block(block.keys[BLOCK:], block.items[BLOCK:])
            del block.keys[BLOCK:], block.items[BLOCK:]
            self._blocks.insert(i + 1, half)
            self._firsts.insert(i + 1, half.keys[0])

    def _remove(self, key: tuple[str, str]) -> None:
        i = self._block_of(key)
        block = self._blocks[i]
        j = bisect.bisect_left(block.keys, key)
        del block.keys[j], block.items[j]
        block.joined = None
        if block.keys:
            self._firsts[i] = block.keys[0]
        else:
            del self._blocks[i], self._firsts[i]

    def _prune(self, upto: int) -> None:
        """Forget the changes up to upto; a list kept at an older value reads all."""

        def prune(conn: Connection) -> None:
            # The counter's row first, as every writer takes it before port_changes'.
            pruned = change_counters.c.pruned
            conn.execute(
                sa.update(change_counters)
                .where(change_counters.c.name == "ports")
                .values(pruned=sa.case((pruned < upto, upto), else_=pruned))
            )
            conn.execute(sa.delete(port_changes).where(port_changes.c.n <= upto))

        try:
            self.db.write(prune)
        except Exception:  # the next refresh tries again
            LOG.exception("Pruning the port change log failed")
