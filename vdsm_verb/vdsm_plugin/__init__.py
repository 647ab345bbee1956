"""The files VDSM carries for Host.setDHCP, laid out as under VDSM's ``lib/vdsm``.

:data:`FILES` says where each goes, relative to VDSM's Python package (``lib/vdsm``
in its source, ``/usr/lib/python3.9/site-packages/vdsm`` on EL9):

- ``network/ovirt_ipam_dhcp.py``: the code shared by both halves and by ovirt-ipam's
  host service (the standard library only);
- ``network/ovirt_ipam_api.py``: the ``API.Global`` methods (vdsmd);
- ``supervdsm_api/ovirt_ipam_dhcp.py``: the privileged half (supervdsmd).

Only ``network/ovirt_ipam_dhcp.py`` is imported by ovirt-ipam itself; the other two
import VDSM. README.md, "In VDSM", says what else VDSM's tree gains.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

#: plug-in file (relative to this directory) -> its place in VDSM's Python package
FILES = {
    "network/ovirt_ipam_dhcp.py": "network/ovirt_ipam_dhcp.py",
    "network/ovirt_ipam_api.py": "network/ovirt_ipam_api.py",
    "supervdsm_api/ovirt_ipam_dhcp.py": "supervdsm_api/ovirt_ipam_dhcp.py",
}

#: the schema entries for lib/vdsm/api/vdsm-api.yml
SCHEMA = HERE.parent / "vdsm-api-dhcp.yml"
