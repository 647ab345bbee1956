"""Errors in Neutron's body: ``{"NeutronError": {"type", "message", "detail"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ipam.api.models import CONVERSION_ERROR
from ipam.exceptions import IdentityUnauthorized, IpamError

LOG = logging.getLogger(__name__)

_HTTP_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    409: "HTTPConflict",
    413: "HTTPRequestEntityTooLarge",
    415: "HTTPUnsupportedMediaType",
}
READ_ONLY = {
    "id",
    "status",
    "created_at",
    "updated_at",
    "revision_number",
    "subnets",
    "binding:vif_type",
    "binding:vif_details",
    "availability_zones",
}


def neutron_error(status: int, type_: str, message: str, detail: str = "") -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"NeutronError": {"type": type_, "message": message, "detail": detail}},
    )


def _conversion_message(exc: RequestValidationError) -> str | None:
    """Neutron's InvalidInput message when every problem is a value that does not
    convert (ipam.api.models: convert_to_int, convert_to_boolean), else None."""
    errors = exc.errors()
    if not errors or any(e.get("type") != CONVERSION_ERROR for e in errors):
        return None
    return " ".join(f"Invalid input for {e['loc'][-1]}. Reason: {e.get('msg')}." for e in errors)


def _validation_message(exc: RequestValidationError) -> str:
    unknown, problems = [], []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if err.get("type") == "extra_forbidden":
            unknown.append(loc[-1] if loc else "?")
        elif err.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
        else:
            problems.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    parts = []
    read_only = [u for u in unknown if u in READ_ONLY]
    if read_only:
        parts.append("Attribute(s) " + ", ".join(f"'{a}'" for a in read_only) + " cannot be set")
    others = [u for u in unknown if u not in READ_ONLY]
    if others:
        parts.append("Unrecognized attribute(s) " + ", ".join(f"'{a}'" for a in others))
    if problems:
        parts.append("Invalid input: " + "; ".join(problems))
    return ". ".join(parts) or "Invalid request body"


def install(app: FastAPI) -> None:
    @app.exception_handler(IpamError)
    async def _ipam(_req: Request, exc: IpamError) -> JSONResponse:
        return neutron_error(exc.status, exc.type, exc.message, exc.detail)

    @app.exception_handler(IdentityUnauthorized)
    async def _login(_req: Request, exc: IdentityUnauthorized) -> JSONResponse:
        # keystoneauth reads Keystone's form; oVirt and Neutron clients read Neutron's.
        body = {
            "error": {"code": 401, "title": "Unauthorized", "message": exc.message},
            "NeutronError": {"type": exc.type, "message": exc.message, "detail": ""},
        }
        return JSONResponse(status_code=401, content=body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        conversion = _conversion_message(exc)
        if conversion is not None:  # as Neutron refuses what its converters refuse
            return neutron_error(400, "InvalidInput", conversion)
        return neutron_error(400, "HTTPBadRequest", _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def _http(_req: Request, exc: HTTPException) -> JSONResponse:
        type_ = _HTTP_TYPES.get(exc.status_code, "HTTPError")
        return neutron_error(exc.status_code, type_, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(req: Request, exc: Exception) -> JSONResponse:
        LOG.exception("Unexpected error in %s %s", req.method, req.url.path)
        return neutron_error(
            500, "HTTPInternalServerError", "Request failed: internal server error"
        )
