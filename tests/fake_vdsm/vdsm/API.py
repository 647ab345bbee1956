"""vdsm.API as the plug-in meets it: APIBase, and class Global with the two lines
VDSM's API.py gains for Host.setDHCP and Host.getDHCP."""

from vdsm.clientIF import clientIF
from vdsm.network import ovirt_ipam_api


class APIBase:
    ctorArgs = []

    def __init__(self):
        self._cif = clientIF.getInstance()
        self._irs = self._cif.irs
        self.log = self._cif.log


class Global(APIBase):
    ctorArgs = []

    def __init__(self):
        APIBase.__init__(self)

    setDHCP = ovirt_ipam_api.setDHCP
    getDHCP = ovirt_ipam_api.getDHCP
