"""Neutron-style collections (networks, subnets, ports): list with filters and
``fields``, show, create, update, delete. One factory, so the three behave alike.

No ``from __future__ import annotations`` here: FastAPI reads the body model from
each route's annotations at definition time.
"""

from collections.abc import Callable, Sequence, Set
from typing import Any, NamedTuple
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ipam.api import views
from ipam.api.auth import require_token
from ipam.api.discovery import base_url
from ipam.api.encoded import EncodedPieces
from ipam.api.errors import READ_ONLY
from ipam.exceptions import BadRequest, InvalidInput

PAGING = {"limit", "marker", "page_reverse"}
#: Attributes a list cannot be sorted by (lists and maps), as Neutron's is_sort_key.
UNSORTABLE = {
    "fixed_ips",
    "subnets",
    "tags",
    "security_groups",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "service_types",
    "availability_zones",
    "availability_zone_hints",
    "allowed_address_pairs",
    "binding:profile",
    "binding:vif_details",
}


def filter_keys(model: type[BaseModel], extra: set[str]) -> set[str]:
    """Attributes a list may filter on: the body's attributes and the read-only ones."""
    inner = next(iter(model.model_fields.values())).annotation
    assert isinstance(inner, type) and issubclass(inner, BaseModel)  # {member: its model}
    names = {f.alias or n for n, f in inner.model_fields.items()}
    return names | READ_ONLY | extra


def parse_query(
    request: Request, allowed: set[str]
) -> tuple[dict[str, list[str]], list[str], dict]:
    """Split the query string into filters, fields and paging; refuse unknown filters
    and sort keys. Paging: limit, marker, page_reverse (the last of each) and sorts,
    a list of (key, ascending) in the order given."""
    wanted: dict[str, list[str]] = {}
    fields: list[str] = []
    paging: dict[str, Any] = {}
    keys: list[str] = []
    dirs: list[str] = []
    for key, value in request.query_params.multi_items():
        if key == "fields":
            fields.extend(v for v in value.split(",") if v)
        elif key in PAGING:
            paging[key] = value
        elif key == "sort_key":
            keys.extend([value] if value else [])
        elif key == "sort_dir":
            dirs.extend([value] if value else [])
        elif key in allowed:
            wanted.setdefault(key, []).append(value)
        else:
            raise BadRequest(f"[{key}] is invalid attribute for filtering")
    paging["sorts"] = _sorts(keys, dirs, allowed)
    return wanted, fields, paging


def _sorts(keys: list[str], dirs: list[str], allowed: set[str]) -> list[tuple[str, bool]]:
    """Neutron's sort_key/sort_dir: repeatable, paired in order; a key without its
    direction is ascending; an unknown key or direction is refused."""
    if len(dirs) > len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    absent = [k for k in keys if k not in allowed or k in UNSORTABLE]
    if absent:
        raise BadRequest(f"{absent} is invalid attribute for sort_keys")
    invalid = [d for d in dirs if d not in ("asc", "desc")]
    if invalid:
        raise BadRequest(
            f"{invalid} is invalid value for sort_dirs, valid value is 'asc' and 'desc'"
        )
    dirs = dirs + ["asc"] * (len(keys) - len(dirs))
    return [(k, d == "asc") for k, d in zip(keys, dirs, strict=True)]


def trim(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields} if fields else item


class _Ordered:
    """One value of a sort key: None first (as Neutron's emulated sorting), then the
    values; values of different types compare by type name, then by text."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def _key(self) -> tuple:
        v = self.value
        if v is None:
            return (0, "", 0)
        if isinstance(v, bool | int | float):
            return (1, "number", v)
        return (1, type(v).__name__, str(v))

    def __lt__(self, other: "_Ordered") -> bool:
        a, b = self._key(), other._key()
        if a[:2] != b[:2]:
            return a[:2] < b[:2]
        return a[2] < b[2]


def _sort(items: list[dict], sorts: list[tuple[str, bool]]) -> list[dict]:
    """Stable sorts, last key first; ties keep the store's order (creation, id), so a
    sorted list still pages deterministically by marker."""
    for key, ascending in reversed(sorts):
        items = sorted(items, key=lambda i: _Ordered(i.get(key)), reverse=not ascending)
    return items


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return 0
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise InvalidInput(
            f"Invalid input for limit: limit must be an integer 0 or greater and not '{text}'"
        )
    return n


def _link(request: Request, rel: str, marker: str | None, reverse: bool) -> dict[str, str]:
    params = [
        (k, v) for k, v in request.query_params.multi_items() if k not in ("marker", "page_reverse")
    ]
    if marker is not None:
        params.append(("marker", marker))
    if reverse:
        params.append(("page_reverse", "True"))
    return {"rel": rel, "href": f"{base_url(request)}{request.url.path}?{urlencode(params)}"}


def paginate(
    request: Request, collection: str, items: list[dict], paging: dict[str, Any]
) -> tuple[list[dict], list[dict]]:
    """Sort (sort_key/sort_dir), then page (limit, marker, page_reverse) as Neutron's
    emulated pagination does: the marker is the id of the last item seen (of the first,
    with page_reverse); an unknown marker gives an empty page. No limit: everything,
    never paged by default (oVirt engine deletes the networks missing from its list)."""
    sorts = paging.get("sorts") or []
    if sorts:
        items = _sort(items, sorts)
    limit = _limit(paging.get("limit"))
    if not limit:
        return items, []
    marker = paging.get("marker")
    reverse = str(paging.get("page_reverse", "false")).lower() == "true"
    if marker:
        index = next((n for n, i in enumerate(items) if i["id"] == marker), None)
        if index is None:
            return [], []
    else:
        index = len(items) if reverse else -1
    if reverse:
        start, end = max(index - limit, 0), index
    else:
        start, end = index + 1, index + 1 + limit
    page = items[start:end]
    links = []
    if page and end < len(items):
        links.append(_link(request, "next", page[-1]["id"], False))
    if page and start > 0:
        links.append(_link(request, "previous", page[0]["id"], True))
    return page, links


class Crud(NamedTuple):
    """The store's calls for one collection, each taking the request's store first
    (the unbound methods of ipam.store.Store, e.g. ``Store.create_port``)."""

    list: Callable[[Any, dict[str, list[str]]], list[dict[str, Any]]]
    get: Callable[[Any, str], dict[str, Any]]
    create: Callable[[Any, dict[str, Any]], dict[str, Any]]
    update: Callable[[Any, str, dict[str, Any]], dict[str, Any]]
    delete: Callable[[Any, str], None]


def crud_router(
    collection: str,
    member: str,
    body_model: type[BaseModel],
    store_of: Callable[[Request], Any],
    crud: Crud,
    extra_filters: Set[str] = frozenset(),
    after_write: Callable[[Request, dict, set[str] | None], dict] | None = None,
    full_list: Callable[[Request], Sequence[bytes]] | None = None,
) -> APIRouter:
    """store_of(request) is the store that crud's calls are made on.

    Handlers return JSONResponse themselves: the store's dicts are plain JSON
    already, and skipping FastAPI's encoder is a third of a create's API cost.

    after_write(request, item, changed attributes or None for a create) may
    replace what a create or update returns (the ports' readiness wait).

    full_list(request), when given, answers a list with no query at all: the whole
    collection's JSON body, already encoded, in pieces (the ports' kept list,
    ipam.store.port_list).
    """
    router = APIRouter(
        prefix=f"/v2.0/{collection}", tags=[collection], dependencies=[Depends(require_token)]
    )
    allowed = filter_keys(body_model, set(extra_filters))

    # The handlers return their Response; response_model documents its body.
    @router.get("", response_model=dict, summary=f"List {collection}")
    def list_items(request: Request) -> Response:
        if full_list is not None and not request.query_params:
            return EncodedPieces(full_list(request))
        wanted, fields, paging = parse_query(request, allowed)
        items = crud.list(store_of(request), wanted)
        items, links = paginate(request, collection, items, paging)
        items = views.adapt(request, collection, items)
        out: dict[str, Any] = {collection: [trim(i, fields) for i in items]}
        if links:
            out[f"{collection}_links"] = links
        return JSONResponse(out)

    @router.get("/{item_id}", response_model=dict, summary=f"Show a {member}")
    def show_item(request: Request, item_id: str) -> JSONResponse:
        _, fields, _ = parse_query(request, set())
        item = views.adapt_one(request, collection, crud.get(store_of(request), item_id))
        return JSONResponse({member: trim(item, fields)})

    @router.post("", status_code=201, response_model=dict, summary=f"Create a {member}")
    def create_item(request: Request, body: body_model = Body(...)) -> JSONResponse:  # type: ignore[valid-type]
        inner = getattr(body, member)
        item = crud.create(store_of(request), inner.attrs())
        if after_write is not None:
            item = after_write(request, item, None)
        return JSONResponse({member: views.adapt_one(request, collection, item)}, 201)

    @router.put("/{item_id}", response_model=dict, summary=f"Update a {member}")
    def update_item(
        request: Request,
        item_id: str,
        body: body_model = Body(...),  # type: ignore[valid-type]
    ) -> JSONResponse:
        inner = getattr(body, member)
        attrs = inner.attrs()
        before = crud.get(store_of(request), item_id) if after_write is not None else None
        item = crud.update(store_of(request), item_id, attrs)
        if after_write is not None and before is not None:
            # What really changed: a PUT that repeats the MAC (oVirt engine's migration
            # sends mac_address and binding:host_id) does not wait for the DHCP servers.
            changed = {k for k in attrs if before.get(k) != item.get(k)}
            item = after_write(request, item, changed)
        return JSONResponse({member: views.adapt_one(request, collection, item)})

    @router.delete("/{item_id}", status_code=204, summary=f"Delete a {member}")
    def delete_item(request: Request, item_id: str) -> Response:
        crud.delete(store_of(request), item_id)
        return Response(status_code=204)

    return router
