"""Host data plane: the DHCP agent, dnsmasq management and the oVirt interface driver."""
