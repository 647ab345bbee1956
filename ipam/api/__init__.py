"""The Neutron v2.0 REST subset that oVirt engine and openstacksdk use."""
