"""supervdsm's half of Host.setDHCP and Host.getDHCP (ovirt-ipam).

VDSM carries this file as ``vdsm/supervdsm_api/ovirt_ipam_dhcp.py``; supervdsmd
loads every module there and serves its ``@expose`` functions to vdsmd as
``supervdsm.getProxy().<name>(...)``. As root it writes the network-to-id mapping
where the DHCP agent reads it (``[dhcp_agent] mapping_file`` of
/etc/ovirt-ipam/ovirt-ipam.conf, by default under /var/lib/vdsm) and starts,
reloads or stops ``ovirt-ipam-dhcp-agent.service`` with systemctl.

Refusals and failures raise ``ovirt_ipam_dhcp.DhcpError`` (VDSM's code and
message), which multiprocessing carries back to vdsmd.
"""

from vdsm.network import ovirt_ipam_dhcp as dhcp

from . import expose  # type: ignore[attr-defined]  # VDSM's supervdsm_api, not ours


@expose
def ovirt_ipam_set_dhcp(networks):
    mapping_file, max_networks = dhcp.settings()
    agent = dhcp.SystemdAgent()
    dhcp.set_dhcp(networks, mapping_file, agent, max_networks, cleanup=agent.cleanup)


@expose
def ovirt_ipam_get_dhcp():
    mapping_file, _ = dhcp.settings()
    return dhcp.get_dhcp(mapping_file, dhcp.SystemdAgent())
