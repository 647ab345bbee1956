"""The answers as each kind of client reads them, chosen by the base path the
administrator gives the client, never guessed from headers.

- ``/v2.0/...`` (and ``/``): Neutron's objects, for openstacksdk, python-openstackclient
  and every Neutron client.
- ``/ovirt/v2.0/...`` (and ``/ovirt/``, the provider URL ``http://HOST:9696/ovirt``
  in oVirt): the same API as oVirt engine's provider client (openstack-java-sdk 3.2.9,
  Jackson) binds it. It binds by Java type and one value of the wrong type fails the
  whole answer: ``Subnet.hostRoutes`` is a ``List<String>``, so a subnet's
  ``host_routes`` are given as strings ``"destination=CIDR,nexthop=IP"`` (Neutron's
  keys, the form neutronclient's ``--host-route`` took). Everything else is the same:
  networks and ports are Java-readable in both views, because what would not be
  (``binding:profile`` values other than strings, ``provider:segmentation_id`` above
  Java's Integer) is refused when it is written.

ipam.api.middleware.ClientPaths sets the view from the path.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

OVIRT_BASE = "/ovirt"
#: ASGI scope keys set by ClientPaths: the view's name and its base path.
VIEW = "ovirt_ipam.view"
BASE = "ovirt_ipam.base"
OVIRT = "ovirt"


def host_route_text(route: dict[str, str]) -> str:
    return f"destination={route['destination']},nexthop={route['nexthop']}"


def _ovirt_subnet(subnet: dict[str, Any]) -> dict[str, Any]:
    routes = subnet.get("host_routes")
    if not routes:
        return subnet
    return dict(subnet, host_routes=[host_route_text(r) for r in routes])


_OVIRT = {"subnets": _ovirt_subnet}


def adapt(request: Request, collection: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list's items as the request's view shows them (the same objects if unchanged)."""
    change = _OVIRT.get(collection) if request.scope.get(VIEW) == OVIRT else None
    return items if change is None else [change(i) for i in items]


def adapt_one(request: Request, collection: str, item: dict[str, Any]) -> dict[str, Any]:
    change = _OVIRT.get(collection) if request.scope.get(VIEW) == OVIRT else None
    return item if change is None else change(item)
