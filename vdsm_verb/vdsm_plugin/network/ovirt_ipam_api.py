"""Host.setDHCP and Host.getDHCP in vdsmd: two ``API.Global`` methods.

VDSM carries this file as ``vdsm/network/ovirt_ipam_api.py``, and ``lib/vdsm/API.py``
binds the methods in ``class Global``::

    from vdsm.network import ovirt_ipam_api
    ...
    class Global(APIBase):
        ...
        setDHCP = ovirt_ipam_api.setDHCP
        getDHCP = ovirt_ipam_api.getDHCP

``lib/vdsm/rpc/Bridge.py``'s ``command_info`` gains :data:`COMMAND_INFO`
(``'Host_getDHCP': {'ret': 'info'}``; setDHCP needs no entry), and
``lib/vdsm/api/vdsm-api.yml`` the entries of ``vdsm_verb/vdsm-api-dhcp.yml``.

vdsmd runs as user vdsm: the root work (the mapping under /var/lib/vdsm, systemctl)
is done by supervdsm (``vdsm/supervdsm_api/ovirt_ipam_dhcp.py``). setDHCP validates
the list here first, then takes the network semaphore of the other network verbs
without blocking, so that no setupNetworks runs while the DHCP agent is set up on
the bridges (it answers ``unavail``, code 40, when another network verb runs).

Python 3.9 and later; the standard library and VDSM only.
"""

import logging

from vdsm.common import api
from vdsm.common import response
from vdsm.common import supervdsm
from vdsm.network import ovirt_ipam_dhcp as dhcp

COMMAND_INFO = dict(dhcp.COMMAND_INFO)

_log = logging.getLogger("api.network")


@api.logged(on="api.network")
@api.method
def setDHCP(self, networks):
    """Set the complete list of networks this host serves DHCP for.

    :param networks: every network to serve, ``[{"name": VDSM name, "id": UUID}]``;
        empty: serve none, stop the DHCP agent.
    """
    try:
        dhcp.validate_request(networks)  # the length limit: supervdsm knows it
    except dhcp.DhcpError as e:
        return response.error_raw(e.code, e.msg)

    if not self._cif._networkSemaphore.acquire(blocking=False):
        _log.warning("concurrent network verb already executing")
        return response.error("unavail", "Another network verb is running; call Host.setDHCP again")
    try:
        supervdsm.getProxy().ovirt_ipam_set_dhcp(networks)
    except dhcp.DhcpError as e:
        return response.error_raw(e.code, e.msg)
    finally:
        self._cif._networkSemaphore.release()
    return None


@api.logged(on="api.network")
@api.method
def getDHCP(self):
    """Report the networks this host serves DHCP for and its DHCP agent's state."""
    try:
        info = supervdsm.getProxy().ovirt_ipam_get_dhcp()
    except dhcp.DhcpError as e:
        return response.error_raw(e.code, e.msg)
    return response.success(info=info)
