"""Following a dnsmasq log file: what it has read, and what it has rejected.

With ``log-facility=FILE`` dnsmasq logs ``dnsmasq-dhcp[PID]: read PATH`` as it
reads a dhcp-hostsdir or dhcp-optsdir file (``dnsmasq[PID]: read PATH - N names``
after a --hostsdir one), and ``duplicate dhcp-host IP address IP at line N of PATH``
right after, when it rejected a record of that file. A file's verdict is final
once a later ``read`` line of any file follows it: dnsmasq finishes one file
before it reads the next. inotify wakes the follower the moment a line is added,
and calls its ``on_change`` (the agent publishes lease facts from new lines at once,
and sleeps while dnsmasq logs nothing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from inotify_simple import INotify, flags

LOG = logging.getLogger(__name__)

_READ = re.compile(r"dnsmasq-dhcp\[\d+\]: read (?P<path>/\S+)$")
# A --hostsdir (DNS) file: its records are replaced as a whole, errors logged before.
_READ_NAMES = re.compile(r"dnsmasq\[\d+\]: read (?P<path>/\S+) - \d+ names$")
_DUPLICATE = re.compile(
    r"dnsmasq\[\d+\]: duplicate dhcp-host IP address (?P<ip>\S+) at line \d+ of (?P<path>/\S+)$"
)


@dataclass(frozen=True)
class LogEvent:
    kind: str  # "read" or "duplicate"
    path: str
    ip: str | None = None


def parse(line: str) -> LogEvent | None:
    match = _READ.search(line) or _READ_NAMES.search(line)
    if match:
        return LogEvent("read", match["path"])
    match = _DUPLICATE.search(line)
    if match:
        return LogEvent("duplicate", match["path"], match["ip"])
    return None


class _Watcher:
    """One inotify instance for the whole agent (instances are limited per user, to
    128 by default; an agent may serve hundreds of networks): a thread turns its
    events into calls of the callbacks watching each directory (a follower's wake-up,
    a network worker's nudge, the agent's look at its mapping file)."""

    def __init__(self) -> None:
        self._inotify = INotify()
        self._lock = threading.Lock()
        self._by_wd: dict[int, set[Callable[[], None]]] = {}
        self._wd_of: dict[str, int] = {}
        threading.Thread(target=self._run, name="inotify", daemon=True).start()

    def watch(self, directory: str, callback: Callable[[], None]) -> None:
        with self._lock:
            wd = self._inotify.add_watch(directory, flags.MODIFY | flags.CREATE | flags.MOVED_TO)
            self._wd_of[directory] = wd
            self._by_wd.setdefault(wd, set()).add(callback)

    def unwatch(self, directory: str, callback: Callable[[], None]) -> None:
        with self._lock:
            wd = self._wd_of.get(directory)
            if wd is None:
                return
            callbacks = self._by_wd.get(wd, set())
            callbacks.discard(callback)
            if not callbacks:
                self._by_wd.pop(wd, None)
                self._wd_of.pop(directory, None)
                with contextlib.suppress(OSError):  # the directory went, and the watch
                    self._inotify.rm_watch(wd)

    def _run(self) -> None:
        while True:
            events = self._inotify.read()
            with self._lock:  # each directory's callbacks once per batch of events
                wds = {ev.wd for ev in events}
                callbacks = [cb for wd in wds for cb in self._by_wd.get(wd, ())]
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # one failing callback must not end the watching
                    LOG.exception("A directory watch's callback failed")


_watcher: _Watcher | None = None
_watcher_lock = threading.Lock()


def _shared_watcher() -> _Watcher:
    global _watcher
    with _watcher_lock:
        if _watcher is None:
            _watcher = _Watcher()
        return _watcher


def watch_directory(directory: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` (in the watching thread: it must be quick) whenever a file in
    ``directory`` is created, written or renamed into it; the agent's one inotify
    instance (see _Watcher)."""
    _shared_watcher().watch(directory, callback)


def unwatch_directory(directory: str, callback: Callable[[], None]) -> None:
    _shared_watcher().unwatch(directory, callback)


class LogFollower:
    """Reads the lines dnsmasq appends, across truncation and rotation."""

    def __init__(self, path: str, on_line: Callable[[str], None] | None = None) -> None:
        self.path = path
        #: Sees every line read, whoever reads (the lease facts follow the log).
        self.on_line = on_line
        self._fd: int | None = None
        self._inode: int | None = None
        self._buf = b""
        #: Called (in the watching thread) whenever the log's directory changed: how
        #: the agent's network worker wakes for new lines instead of looking every tick.
        self.on_change: Callable[[], None] | None = None
        self._dir = os.path.dirname(path)
        os.makedirs(self._dir, exist_ok=True)
        self._changed = threading.Event()
        watch_directory(self._dir, self._notify)

    def _notify(self) -> None:
        self._changed.set()
        on_change = self.on_change
        if on_change is not None:
            on_change()

    def _reopen(self) -> None:
        """Follow the path: a rotated (replaced) log is read from its start."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return
        if inode == self._inode:
            return
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._inode, self._buf = os.open(self.path, os.O_RDONLY), inode, b""

    def _drain(self) -> list[str]:
        if self._fd is None:
            return []
        if os.fstat(self._fd).st_size < os.lseek(self._fd, 0, os.SEEK_CUR):
            os.lseek(self._fd, 0, os.SEEK_SET)  # truncated
        while chunk := os.read(self._fd, 1 << 16):
            self._buf += chunk
        *complete, self._buf = self._buf.split(b"\n")
        return [c.decode("utf-8", "replace") for c in complete]

    def lines(self) -> list[str]:
        """Complete lines appended since the last call."""
        out = self._drain()  # the rest of the current file, even if it was rotated away
        self._reopen()
        out += self._drain()
        if self.on_line is not None:
            for line in out:
                self.on_line(line)
        return out

    def skip_to_end(self) -> None:
        """Forget what is logged so far (start of a batch, or adoption)."""
        self.lines()

    def wait(self, timeout: float) -> None:
        """Block until the log directory changed since the last wait, or timeout."""
        self._changed.wait(max(0.0, timeout))
        self._changed.clear()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        unwatch_directory(self._dir, self._notify)
