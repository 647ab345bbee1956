"""The network-to-id mapping that ``Host.setDHCP`` writes and the interface driver reads.

It tells a host which oVirt networks it must serve DHCP for, and the IPAM network id
of each. The path comes from configuration (under the VDSM state directory).

The file format and its one implementation live with the verb, in the module VDSM
carries too (the standard library only, Python 3.9):
:mod:`vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp`. Writing is atomic (temporary
file, fsync, rename, directory fsync), the file is 0600 in a 0700 directory, and
invalid input raises :class:`MappingError` and leaves the file as it was.
"""

from __future__ import annotations

from vdsm_verb.vdsm_plugin.network.ovirt_ipam_dhcp import (
    FORMAT_VERSION,
    MappingError,
    is_canonical_uuid,
    is_vdsm_name,
    read_mapping,
    validate_networks,
    write_mapping,
)

__all__ = [
    "FORMAT_VERSION",
    "MappingError",
    "is_canonical_uuid",
    "is_vdsm_name",
    "read_mapping",
    "validate_networks",
    "write_mapping",
]
