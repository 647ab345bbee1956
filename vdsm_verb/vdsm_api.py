"""The verb as VDSM carries it: a drop-in for lib/vdsm/API.py and Bridge.py.

In VDSM, add to ``class Global`` in lib/vdsm/API.py::

    def setDHCP(self, networks):
        return vdsm_verb.vdsm_api.set_dhcp(networks)

    def getDHCP(self):
        return vdsm_verb.vdsm_api.get_dhcp()

and merge :data:`COMMAND_INFO` into ``command_info`` in
lib/vdsm/rpc/Bridge.py, and vdsm-api-dhcp.yml into lib/vdsm/api/vdsm-api.yml.
The verb reads ovirt-ipam's configuration (/etc/ovirt-ipam/ovirt-ipam.conf) for
the mapping path and how to run the agent. Until VDSM carries it, the host
service (``ovirt-ipam host``) serves the same verb over the bus.
"""

from __future__ import annotations

import functools
from typing import Any

from vdsm_verb.verb import DhcpVerb

# Bridge.py's command_info: which key of the answer is the JSON-RPC result.
COMMAND_INFO: dict[str, dict[str, str]] = {
    "Host_setDHCP": {},
    "Host_getDHCP": {"ret": "dhcp"},
}


@functools.cache
def _verb() -> DhcpVerb:
    from ipam import config
    from vdsm_verb.host_service import build_verb

    config.CONF([], project="ovirt-ipam", default_config_files=["/etc/ovirt-ipam/ovirt-ipam.conf"])
    return build_verb(config.CONF)


def set_dhcp(networks: list[dict[str, str]]) -> dict[str, Any]:
    """Global.setDHCP(networks)."""
    return _verb().set_dhcp(networks)


def get_dhcp() -> dict[str, Any]:
    """Global.getDHCP()."""
    return _verb().get_dhcp()
