"""``Host.setDHCP`` and ``Host.getDHCP`` as the ovirt-ipam host service serves them
over the bus, for hosts whose VDSM does not carry the verb.

The same code as VDSM's plug-in (:mod:`vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp`):
setDHCP(networks) validates the whole list first (names by VDSM's rule, canonical
UUIDs, no duplicates, a bounded length); on any error nothing changes. Then it
writes the network-to-id mapping atomically where the interface driver reads it and
makes the DHCP agent serve exactly that list: started when it is not running, told
to re-read the mapping (SIGHUP, DHCP keeps answering on the networks that stay) when
the list changed. An empty list stops the agent, stops its dnsmasq processes,
unplugs its interfaces and leaves an empty mapping. The same list twice changes
nothing and restarts nothing.

Answers use VDSM's status shape and codes (21 refused, 16 failed); getDHCP's state
is under ``info``, as Bridge.py's command_info says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from vdsm_verb.vdsm_plugin.network import ovirt_ipam_dhcp as core

DONE = {"code": 0, "message": "Done"}
ERR_UNEXPECTED = core.ERR_UNEXPECTED
ERR_BAD_PARAMS = core.ERR_BAD_PARAMS


def _error(code: int, message: str) -> dict[str, Any]:
    return {"status": {"code": code, "message": message}}


class DhcpVerb:
    def __init__(
        self,
        mapping_path: str,
        service: Any,
        shutdown: Callable[[], None],
        max_networks: int = core.DEFAULT_MAX_NETWORKS,
    ) -> None:
        self.mapping_path, self.service, self.shutdown = mapping_path, service, shutdown
        self.max_networks = max_networks
        self._lock = threading.Lock()  # calls are serialised

    def set_dhcp(self, networks: Any) -> dict[str, Any]:
        try:
            core.validate_request(networks, self.max_networks)  # refused before the lock
            with self._lock:
                core.set_dhcp(
                    networks, self.mapping_path, self.service, self.max_networks, self.shutdown
                )
        except core.DhcpError as exc:
            return _error(exc.code, exc.msg)
        return {"status": DONE}

    def get_dhcp(self) -> dict[str, Any]:
        try:
            info = core.get_dhcp(self.mapping_path, self.service)
        except core.DhcpError as exc:
            return _error(exc.code, exc.msg)
        return {"status": DONE, "info": info}
