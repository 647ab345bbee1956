"""``ovirt-ipam lab``: a whole oVirt data center's DHCP on one machine (see lab.py)."""
