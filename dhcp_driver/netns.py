"""Named network namespaces entered by one thread, not by a forked child.

setns(2) moves only the calling thread, so a thread can step into a namespace, open
a socket there and step back: the socket stays in that namespace. pyroute2's own
``IPRoute(netns=...)`` forks a child per socket instead, which in a large threaded
agent serving hundreds of networks costs milliseconds each. The DHCP agent's
interface driver and the lab (its relay, its VMs) share these helpers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

from pyroute2 import IPRoute, netns

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def netns_fd(namespace: str) -> Iterator[int]:
    """An fd of the named namespace; FileNotFoundError when it does not exist."""
    fd = os.open(os.path.join(netns.NETNS_RUN_DIR, namespace), os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def entered(namespace: str | None) -> Iterator[None]:
    """This thread inside the named namespace for the block (None: stay where it is);
    sockets opened in the block stay in that namespace after it."""
    if namespace is None:
        yield
        return
    with netns_fd(namespace) as target:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)


def iproute_in(namespace: str | None = None) -> IPRoute:
    """An RTNL socket in the caller's netns, or in an existing named netns.

    groups=0: we never read multicast events, so do not subscribe to them.
    """
    with entered(namespace):
        return IPRoute(groups=0)
