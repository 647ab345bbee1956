"""Engine side of ovirt-ipam: the IPAM store, the Neutron-compatible REST API."""
