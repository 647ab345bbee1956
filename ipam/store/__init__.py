"""The IPAM domain and its SQL: networks, subnets, ports, their addresses and the
DHCP agents' records. ``Store`` (ipam.store.facade) is the front door; the modules
beside it are the per-resource SQL it calls."""

from ipam.store.facade import ChangeListener, Store

__all__ = ["ChangeListener", "Store"]
