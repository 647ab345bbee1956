"""Errors of the IPAM store, named and coded as Neutron names them.

The REST layer turns each into ``{"NeutronError": {"type", "message", "detail"}}``
with the status code below, so clients written for Neutron understand them.
"""

from __future__ import annotations


class IpamError(Exception):
    """Base: a request the store refuses. ``type`` is the Neutron error type."""

    status = 500
    type = "NeutronException"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class BadRequest(IpamError):
    status = 400
    type = "HTTPBadRequest"


class InvalidInput(BadRequest):
    type = "InvalidInput"


class NotFound(IpamError):
    status = 404
    type = "NotFound"


class NetworkNotFound(NotFound):
    type = "NetworkNotFound"

    def __init__(self, net_id: str) -> None:
        super().__init__(f"Network {net_id} could not be found.")


class SubnetNotFound(NotFound):
    type = "SubnetNotFound"

    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Subnet {subnet_id} could not be found.")


class PortNotFound(NotFound):
    type = "PortNotFound"

    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port {port_id} could not be found.")


class Conflict(IpamError):
    status = 409
    type = "Conflict"


class NetworkInUse(Conflict):
    type = "NetworkInUse"


class SubnetInUse(Conflict):
    type = "SubnetInUse"


class IpAddressAlreadyAllocated(Conflict):
    type = "IpAddressAlreadyAllocated"


class MacAddressInUse(Conflict):
    type = "MacAddressInUse"


class IpAddressGenerationFailure(Conflict):
    type = "IpAddressGenerationFailure"


class VdsmNameInUse(Conflict):
    type = "VdsmNameInUse"


class RetryLimitExceeded(IpamError):
    status = 503
    type = "ServiceUnavailable"


class NotAuthenticated(IpamError):
    status = 401
    type = "NotAuthenticated"


class IdentityUnauthorized(NotAuthenticated):
    """A refused login at the token endpoint: answered in Keystone's form as well."""
