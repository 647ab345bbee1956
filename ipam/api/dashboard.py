"""The administrator's web page (``GET /dashboard``) and the JSON it polls
(``/dashboard/api/...``). Read-only.

The page is package files (HTML, one script, one stylesheet; nothing from the
internet) and holds no data, so it is served without a token; the JSON it polls is
checked like ``/metrics`` (require_token). Parameters are checked as the API checks
its own (bounded integers and strings, unknown names refused: a 400 in Neutron's
body); what is read is ipam.store.dashboard's, always one bounded page.

No ``from __future__ import annotations``: FastAPI reads the parameters' Annotated
types from each route's annotations.
"""

import functools
import html
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ipam.api.auth import require_token
from ipam.api.views import BASE
from ipam.exceptions import BadRequest, NotFound
from ipam.store.dashboard import Dashboard

STATIC = Path(__file__).with_name("static")
#: The page's own files: name -> media type. Nothing else is served from STATIC.
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
PAGE_MAX = 200  # rows per answer, whatever the store holds
OFFSET_MAX = 10_000_000
SEARCH_MAX = 100
#: No script or style but the page's own, no connection but to this engine, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description=f"Rows, at most {PAGE_MAX}.")]
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX, description="Rows skipped.")]
Search = Annotated[
    str,
    Query(
        max_length=SEARCH_MAX,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Text the rows contain (ignoring case); for ports a whole MAC, id "
        "or address is looked up exactly.",
    ),
]
IdFilter = Annotated[str | None, Query(max_length=36, pattern=r"^[0-9A-Za-z-]+$")]
StatusFilter = Annotated[str | None, Query(max_length=16, pattern=r"^[A-Z_]+$")]


def _only(*allowed: str) -> Callable[[Request], None]:
    """Refuse parameters a call does not take, as the API refuses unknown filters:
    a misspelt ``limt`` must not silently return the default page."""

    def check(request: Request) -> None:
        for key in request.query_params:
            if key not in allowed:
                raise BadRequest(
                    f"[{key}] is not a parameter of {request.url.path}; it takes: "
                    + (", ".join(allowed) or "none")
                )

    return check


page = APIRouter(tags=["dashboard"], include_in_schema=False)
api = APIRouter(tags=["dashboard"], dependencies=[Depends(require_token)])


@functools.cache
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@page.get("/dashboard", response_class=Response)
def dashboard(request: Request) -> Response:
    """The page itself: no data in it, so no token needed to fetch it. Its links
    carry the path it was asked by (``/ovirt`` view, a proxy's root path)."""
    base = request.scope.get("root_path", "") + request.scope.get(BASE, "") + "/dashboard"
    body = _asset("dashboard.html").replace(b"{{BASE}}", html.escape(base).encode())
    return Response(body, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@page.get("/dashboard/static/{name}", response_class=Response)
def static(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"No such file: {name}")
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


def _view(request: Request) -> Dashboard:
    return Dashboard(request.app.state.store, request.app.state.host_down_time)


@api.get("/dashboard/api/summary", dependencies=[Depends(_only())])
def summary(request: Request) -> dict[str, Any]:
    """Counts for the page's header."""
    return _view(request).summary()


@api.get("/dashboard/api/networks", dependencies=[Depends(_only("limit", "offset", "q"))])
def list_networks(
    request: Request, limit: Limit = 50, offset: Offset = 0, q: Search = ""
) -> dict[str, Any]:
    """A page of networks: HA count, serving hosts (alive or not), usage per subnet."""
    return _view(request).networks(limit, offset, q)


@api.get("/dashboard/api/hosts", dependencies=[Depends(_only("limit", "offset", "q"))])
def list_hosts(
    request: Request, limit: Limit = 50, offset: Offset = 0, q: Search = ""
) -> dict[str, Any]:
    """A page of hosts: alive or not, last heartbeats, networks served."""
    return _view(request).hosts(limit, offset, q)


@api.get(
    "/dashboard/api/ports",
    dependencies=[Depends(_only("limit", "offset", "q", "network_id", "status"))],
)
def list_ports(
    request: Request,
    limit: Limit = 50,
    offset: Offset = 0,
    q: Search = "",
    network_id: IdFilter = None,
    status: StatusFilter = None,
) -> dict[str, Any]:
    """A page of ports, newest first: status, addresses, lease and reason."""
    return _view(request).ports(limit, offset, q, network_id, status)


router = APIRouter()
router.include_router(page)
router.include_router(api)
