"""A Keystone-style token endpoint, as oVirt's own OVN provider offers one.

oVirt engine's provider client speaks Keystone v2.0 (``POST /v2.0/tokens``, and
``POST /v3/tokens`` with the same body when its auth URL ends in /v3 and no tenant is
set);
keystoneauth (openstacksdk) speaks v3 (``POST /v3/auth/tokens``). Both hand out
the token of the configured auth plugin and a catalog naming this API as the
``network`` service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ipam.api.discovery import base_url
from ipam.api.models import V2TokenBody, V3TokenBody
from ipam.exceptions import IdentityUnauthorized

router = APIRouter(tags=["identity"])
TOKEN_LIFETIME = timedelta(hours=24)
_USER = {"id": "ovirt-ipam-admin", "name": "admin", "domain": {"id": "default", "name": "Default"}}
_PROJECT = {"id": "ovirt", "name": "ovirt", "domain": {"id": "default", "name": "Default"}}


def _times() -> tuple[str, str]:
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.000000Z"
    return now.strftime(fmt), (now + TOKEN_LIFETIME).strftime(fmt)


def _issue(request: Request, username: str, password: str) -> str:
    token = request.app.state.auth.issue_token(username, password)
    if token is None:
        raise IdentityUnauthorized("The request you have made requires authentication.")
    return token


@router.post("/v2.0/tokens", summary="Keystone v2.0 token (oVirt engine)")
@router.post(
    "/v3/tokens",
    summary="Keystone v2.0 token under a /v3 auth URL",
    description="oVirt engine's External Network Provider with a /v3 authentication URL "
    "and no tenant posts the Keystone v2.0 body here; answered as /v2.0/tokens.",
)
def v2_tokens(request: Request, body: V2TokenBody) -> dict:
    creds = body.auth.passwordCredentials
    token = _issue(request, creds.username if creds else "", creds.password if creds else "")
    issued, expires = _times()
    url = base_url(request)
    tenant = {
        "id": body.auth.tenantId or "ovirt",
        "name": body.auth.tenantName or "ovirt",
        "enabled": True,
        "description": "",
    }
    return {
        "access": {
            "token": {"id": token, "issued_at": issued, "expires": expires, "tenant": tenant},
            "serviceCatalog": [
                {
                    "type": "network",
                    "name": "neutron",
                    "endpoints_links": [],
                    "endpoints": [
                        {
                            "region": "RegionOne",
                            "publicURL": url,
                            "internalURL": url,
                            "adminURL": url,
                            "id": "ovirt-ipam",
                        }
                    ],
                }
            ],
            "user": {
                "id": _USER["id"],
                "username": _USER["name"],
                "name": _USER["name"],
                "roles": [{"name": "admin"}],
                "roles_links": [],
            },
            "metadata": {"is_admin": 1, "roles": ["admin"]},
        }
    }


@router.get("/v3", summary="Keystone v3 version document")
@router.get("/v3/", include_in_schema=False)
def v3_version(request: Request) -> dict:
    return {
        "version": {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base_url(request)}/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }
    }


@router.post("/v3/auth/tokens", status_code=201, summary="Keystone v3 password token")
def v3_tokens(request: Request, body: V3TokenBody) -> JSONResponse:
    identity = body.auth.get("identity") or {}
    user = (
        ((identity.get("password") or {}).get("user") or {}) if isinstance(identity, dict) else {}
    )
    name, password = user.get("name") or user.get("id") or "", user.get("password") or ""
    if not isinstance(name, str) or not isinstance(password, str):
        raise IdentityUnauthorized("The request you have made requires authentication.")
    token = _issue(request, name, password)
    issued, expires = _times()
    url = base_url(request)
    content = {
        "token": {
            "methods": ["password"],
            "issued_at": issued,
            "expires_at": expires,
            "user": _USER,
            "project": _PROJECT,
            "roles": [{"id": "admin", "name": "admin"}],
            "catalog": [
                {
                    "type": "network",
                    "name": "neutron",
                    "id": "network",
                    "endpoints": [
                        {
                            "id": f"network-{i}",
                            "interface": i,
                            "region": "RegionOne",
                            "region_id": "RegionOne",
                            "url": url,
                        }
                        for i in ("public", "internal", "admin")
                    ],
                }
            ],
        }
    }
    return JSONResponse(status_code=201, content=content, headers={"X-Subject-Token": token})
