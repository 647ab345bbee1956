"""The Host.setDHCP VDSM verb, its schema entry and the host service."""
