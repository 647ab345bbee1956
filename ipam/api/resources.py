"""Neutron-style collections (networks, subnets, ports): list with filters and
``fields``, show, create, update, delete. One factory, so the three behave alike.

No ``from __future__ import annotations`` here: FastAPI reads the body model from
each route's annotations at definition time.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from ipam.api.auth import require_token
from ipam.api.errors import READ_ONLY
from ipam.exceptions import BadRequest, InvalidInput

PAGING = {"limit", "marker", "page_reverse", "sort_key", "sort_dir"}


def filter_keys(model: type, extra: set[str]) -> set[str]:
    """Attributes a list may filter on: the body's attributes and the read-only ones."""
    inner = next(iter(model.model_fields.values())).annotation
    names = {f.alias or n for n, f in inner.model_fields.items()}
    return names | READ_ONLY | extra


def parse_query(
    request: Request, allowed: set[str]
) -> tuple[dict[str, list[str]], list[str], dict]:
    """Split the query string into filters, fields and paging; refuse unknown filters."""
    wanted: dict[str, list[str]] = {}
    fields: list[str] = []
    paging: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key == "fields":
            fields.extend(v for v in value.split(",") if v)
        elif key in PAGING:
            paging[key] = value
        elif key in allowed:
            wanted.setdefault(key, []).append(value)
        else:
            raise BadRequest(f"[{key}] is invalid attribute for filtering")
    return wanted, fields, paging


def trim(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields} if fields else item


def paginate(
    request: Request, collection: str, items: list[dict], paging: dict[str, str]
) -> tuple[list[dict], list[dict]]:
    marker, limit = paging.get("marker"), paging.get("limit")
    if marker:
        ids = [i["id"] for i in items]
        items = items[ids.index(marker) + 1 :] if marker in ids else []
    links: list[dict] = []
    if limit:
        try:
            n = int(limit)
        except ValueError:
            raise InvalidInput(f"Invalid input for limit: '{limit}' is not an integer") from None
        if n > 0 and len(items) > n:
            items = items[:n]
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
            params.append(("marker", items[-1]["id"]))
            links.append({"rel": "next", "href": f"{request.url.path}?{urlencode(params)}"})
    return items, links


def crud_router(
    collection: str,
    member: str,
    body_model: type,
    ops: Callable[[Request], Any],
    extra_filters: set[str] = frozenset(),  # type: ignore[assignment]
    after_write: Callable[[Request, dict, set[str] | None], dict] | None = None,
) -> APIRouter:
    """ops(request) returns the store; method names follow ``{verb}_{member}``.

    Handlers return JSONResponse themselves: the store's dicts are plain JSON
    already, and skipping FastAPI's encoder is a third of a create's API cost.

    after_write(request, item, changed attributes or None for a create) may
    replace what a create or update returns (the ports' readiness wait).
    """
    router = APIRouter(
        prefix=f"/v2.0/{collection}", tags=[collection], dependencies=[Depends(require_token)]
    )
    allowed = filter_keys(body_model, set(extra_filters))

    def store_call(request: Request, verb: str) -> Callable[..., Any]:
        name = f"{verb}_{collection if verb == 'list' else member}"
        return getattr(ops(request), name)

    @router.get("", summary=f"List {collection}")
    def list_items(request: Request) -> dict:
        wanted, fields, paging = parse_query(request, allowed)
        items = store_call(request, "list")(wanted)
        items, links = paginate(request, collection, items, paging)
        out: dict[str, Any] = {collection: [trim(i, fields) for i in items]}
        if links:
            out[f"{collection}_links"] = links
        return JSONResponse(out)

    @router.get("/{item_id}", summary=f"Show a {member}")
    def show_item(request: Request, item_id: str) -> dict:
        _, fields, _ = parse_query(request, set())
        return JSONResponse({member: trim(store_call(request, "get")(item_id), fields)})

    @router.post("", status_code=201, summary=f"Create a {member}")
    def create_item(request: Request, body: body_model = Body(...)) -> dict:  # type: ignore[valid-type]
        inner = getattr(body, member)
        item = store_call(request, "create")(inner.attrs())
        if after_write is not None:
            item = after_write(request, item, None)
        return JSONResponse({member: item}, 201)

    @router.put("/{item_id}", summary=f"Update a {member}")
    def update_item(request: Request, item_id: str, body: body_model = Body(...)) -> dict:  # type: ignore[valid-type]
        inner = getattr(body, member)
        attrs = inner.attrs()
        item = store_call(request, "update")(item_id, attrs)
        if after_write is not None:
            item = after_write(request, item, set(attrs))
        return JSONResponse({member: item})

    @router.delete("/{item_id}", status_code=204, summary=f"Delete a {member}")
    def delete_item(request: Request, item_id: str) -> Response:
        store_call(request, "delete")(item_id)
        return Response(status_code=204)

    return router
