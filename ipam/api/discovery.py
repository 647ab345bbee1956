"""Version discovery, extensions and IP availabilities: the read-only parts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ipam.api import views
from ipam.api.auth import require_token
from ipam.exceptions import NotFound

router = APIRouter()

EXTENSIONS = [
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    (
        "dns-integration",
        "DNS Integration",
        "Provides integration with DNS: a port's dns_name (its hostname, given by DHCP and "
        "answered by the network's DNS service) and dns_assignment, a network's dns_domain.",
    ),
    (
        "extra_dhcp_opt",
        "Neutron Extra DHCP options",
        "Extra options configuration for DHCP. For example PXE boot options to DHCP clients "
        "can be specified (e.g. tftp-server, server-ip-address, bootfile-name); an "
        "allow-list of typed options.",
    ),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    (
        "network-ip-availability",
        "Network IP Availability",
        "Provides IP availability data for each network and subnet.",
    ),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks "
        "(accepted and kept, not acted on).",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields "
        "to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute",
        "Enables to set tag on resources with standard attribute (accepted and kept).",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
    ),
    (
        "ovirt-dhcp",
        "oVirt DHCP placement",
        "Networks carry vdsm_name (the bridge name on oVirt "
        "hosts), ha_count (how many hosts serve DHCP for the network) and "
        "dhcp_lease_time (seconds, -1 infinite, null the DHCP agent's default) and "
        "dns_service (whether their DHCP servers answer DNS; null the engine's default).",
    ),
]

COLLECTIONS = ["networks", "subnets", "ports", "network-ip-availabilities", "extensions"]


def base_url(request: Request) -> str:
    """Where this API is, as the client reached it: the public URL (or the request's
    own), and the view's base path (``/ovirt`` for oVirt engine's, ipam.api.views)."""
    public = request.app.state.public_url
    return (public or str(request.base_url)).rstrip("/") + request.scope.get(views.BASE, "")


@router.get("/", tags=["discovery"], summary="API versions")
def versions(request: Request) -> dict:
    return {
        "versions": [
            {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"href": f"{base_url(request)}/v2.0/", "rel": "self"}],
            }
        ]
    }


@router.get("/v2.0", tags=["discovery"], summary="Resources of v2.0")
@router.get("/v2.0/", tags=["discovery"], include_in_schema=False)
def v2_resources(request: Request) -> dict:
    base = base_url(request)
    return {
        "resources": [
            {
                "name": c.rstrip("s").replace("availabilitie", "availability"),
                "collection": c,
                "links": [{"href": f"{base}/v2.0/{c}", "rel": "self"}],
            }
            for c in COLLECTIONS
        ]
    }


def _extension(alias: str, name: str, description: str) -> dict:
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2026-11-21T00:00:00-00:00",
        "links": [],
    }


@router.get("/v2.0/extensions", tags=["discovery"], dependencies=[Depends(require_token)])
def extensions() -> dict:
    return {"extensions": [_extension(*e) for e in EXTENSIONS]}


@router.get("/v2.0/extensions/{alias}", tags=["discovery"], dependencies=[Depends(require_token)])
def extension(alias: str) -> dict:
    for ext in EXTENSIONS:
        if ext[0] == alias:
            return {"extension": _extension(*ext)}
    raise NotFound(f"Extension with alias {alias} does not exist")


@router.get(
    "/v2.0/network-ip-availabilities",
    tags=["network-ip-availabilities"],
    dependencies=[Depends(require_token)],
)
def ip_availabilities(request: Request) -> dict:
    from ipam.api.resources import parse_query

    allowed = {"network_id", "network_name", "project_id", "tenant_id", "ip_version"}
    wanted, fields, _ = parse_query(request, allowed)
    raw = wanted.pop("ip_version", None)
    versions = None if raw is None else {int(v) for v in raw if v in ("4", "6")}
    items = request.app.state.store.ip_availabilities(wanted, versions)
    return {
        "network_ip_availabilities": [
            {k: v for k, v in i.items() if not fields or k in fields} for i in items
        ]
    }


@router.get(
    "/v2.0/network-ip-availabilities/{network_id}",
    tags=["network-ip-availabilities"],
    dependencies=[Depends(require_token)],
)
def ip_availability(request: Request, network_id: str) -> dict:
    return {"network_ip_availability": request.app.state.store.ip_availability(network_id)}
