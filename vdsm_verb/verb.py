"""``Host.setDHCP`` and ``Host.getDHCP``: which networks this host serves DHCP for.

setDHCP(networks) validates the whole list first (names by VDSM's rule, canonical
UUIDs, no duplicates, a bounded length); on any error nothing changes. Then it
writes the network-to-id mapping atomically (temp file, fsync, rename, directory
fsync) where the interface driver reads it and makes the DHCP agent serve exactly
that list: started when it is not running, told to re-read the mapping (SIGHUP,
DHCP keeps answering on the networks that stay) when the list changed. An empty
list stops the agent, stops its dnsmasq processes, unplugs its interfaces and
leaves an empty mapping. The same list twice changes nothing and restarts nothing.

Answers use VDSM's status shape and codes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from dhcp_driver.mapping import MappingError, read_mapping, validate_networks, write_mapping
from vdsm_verb.service_manager import AgentService, ServiceError

LOG = logging.getLogger(__name__)

DONE = {"code": 0, "message": "Done"}
# VDSM's codes: 11 MissParam, 16 unexpected; 20-35 are the network verbs' (21 bad params).
ERR_MISSING_PARAM = 11
ERR_UNEXPECTED = 16
ERR_BAD_PARAMS = 21


def _error(code: int, message: str) -> dict[str, Any]:
    return {"status": {"code": code, "message": message}}


class DhcpVerb:
    def __init__(
        self,
        mapping_path: str,
        service: AgentService,
        shutdown: Callable[[], None],
        max_networks: int = 256,
    ) -> None:
        self.mapping_path, self.service, self.shutdown = mapping_path, service, shutdown
        self.max_networks = max_networks
        self._lock = threading.Lock()  # calls are serialised

    def set_dhcp(self, networks: Any = None) -> dict[str, Any]:
        if networks is None:
            return _error(ERR_MISSING_PARAM, "Missing required parameter: networks")
        if not isinstance(networks, list):
            return _error(ERR_BAD_PARAMS, "networks must be a list of {name, id}")
        if len(networks) > self.max_networks:
            return _error(
                ERR_BAD_PARAMS,
                f"networks has {len(networks)} entries; at most {self.max_networks} are allowed",
            )
        try:
            entries = validate_networks(networks)
        except MappingError as exc:
            return _error(ERR_BAD_PARAMS, f"Invalid networks: {exc}")
        with self._lock:
            try:
                changed = write_mapping(self.mapping_path, entries)
            except (OSError, MappingError) as exc:
                LOG.error(
                    "setDHCP: cannot write %s: %s; the old mapping is intact",
                    self.mapping_path,
                    exc,
                )
                return _error(
                    ERR_UNEXPECTED,
                    f"Cannot write the DHCP network mapping {self.mapping_path}: {exc}",
                )
            try:
                self._converge(entries, changed)
            except (ServiceError, OSError) as exc:
                LOG.error("setDHCP: the DHCP agent did not follow: %s", exc)
                return _error(ERR_UNEXPECTED, f"Mapping written, but the DHCP agent: {exc}")
        LOG.info(
            "setDHCP: %d network(s) %s",
            len(entries),
            ", ".join(f"{e['name']}={e['id']}" for e in entries) or "(none)",
        )
        return {"status": DONE}

    def _converge(self, entries: list[dict[str, str]], changed: bool) -> None:
        pid = self.service.running()
        if entries:
            if pid is None:
                LOG.info("setDHCP: starting the DHCP agent")
                self.service.start()
            elif changed:
                LOG.info("setDHCP: the DHCP agent pid=%d re-reads the mapping", pid)
                self.service.reconcile()
            return
        if pid is not None:
            LOG.info("setDHCP: no networks; stopping the DHCP agent pid=%d", pid)
            self.service.stop()
        self.shutdown()

    def get_dhcp(self) -> dict[str, Any]:
        try:
            mapping = read_mapping(self.mapping_path)
        except MappingError as exc:
            return _error(ERR_UNEXPECTED, str(exc))
        pid = self.service.running()
        networks = [
            {"name": name, "id": net_id}
            for net_id, name in sorted(mapping.items(), key=lambda item: item[1])
        ]
        return {
            "status": DONE,
            "dhcp": {"networks": networks, "agent": {"running": pid is not None, "pid": pid}},
        }
