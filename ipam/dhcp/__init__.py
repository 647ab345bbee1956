"""The engine side of DHCP: the notifier that tells the agents about changes, the
bus server that answers them, port readiness, the DHCP manager with its placement
and leader lock. The host side is the top-level dhcp_driver package."""
