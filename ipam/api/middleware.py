"""ASGI middleware: refuse oversized bodies before parsing, log one line per request;
ignore empty path segments and serve the oVirt view's base path."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipam.api.views import BASE, OVIRT, OVIRT_BASE, VIEW

LOG = logging.getLogger("ipam.api.access")


class RequestObserver(Protocol):
    def request(self, method: str, path: str, status: int, seconds: float) -> None: ...


def _error(status: int, type_: str, message: str) -> bytes:
    return json.dumps({"NeutronError": {"type": type_, "message": message, "detail": ""}}).encode()


class BodyLimitAndAccessLog:
    def __init__(self, app: ASGIApp, max_body: int, metrics: RequestObserver | None = None) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, length = time.monotonic(), 500, 0

        async def send_logged(message: Message) -> None:
            nonlocal status, length
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                length += len(message.get("body", b""))
            await send(message)

        try:
            body = await self._read_body(receive)
            if body is None:
                payload = _error(
                    413,
                    "HTTPRequestEntityTooLarge",
                    f"Request body larger than {self.max_body} bytes",
                )
                await send_logged(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                        ],
                    }
                )
                await send_logged({"type": "http.response.body", "body": payload})
                return
            if body:
                # Neutron reads the body as JSON whatever Content-Type says (curl -d).
                headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope = dict(scope, headers=[*headers, (b"content-type", b"application/json")])
            sent = False

            async def replay() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_logged)
        finally:
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"] + (f"?{query}" if query else "")
            elapsed = time.monotonic() - start
            LOG.info(
                '%s "%s %s" status: %d len: %d time: %.4f',
                client[0],
                scope["method"],
                path,
                status,
                length,
                elapsed,
            )
            if self.metrics is not None:
                self.metrics.request(scope["method"], scope["path"], status, elapsed)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


_SLASHES = re.compile(r"/{2,}")
_RAW_SLASHES = re.compile(rb"/{2,}")


def _normal(path: str) -> str:
    path = _SLASHES.sub("/", path)
    return path.rstrip("/") or "/"


class ClientPaths:
    """Paths as clients really send them.

    Empty path segments are ignored: oVirt engine glues the provider URL the
    administrator typed and ``/v2.0`` verbatim, so a URL typed with a trailing slash
    gives ``//v2.0/networks``, and engine-setup's auth URL ``.../v2.0/`` gives
    ``/v2.0//tokens``. A trailing slash goes too (``/v2.0/`` is ``/v2.0``).

    ``/ovirt/...`` is served as ``/...`` in oVirt engine's view (ipam.api.views):
    the scope carries the view and its base path, which the answers' links keep.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = _normal(scope["path"])
            raw = scope.get("raw_path")
            raw = _RAW_SLASHES.sub(b"/", raw).rstrip(b"/") or b"/" if raw else None
            view, base = None, ""
            if path == OVIRT_BASE or path.startswith(OVIRT_BASE + "/"):
                view, base = OVIRT, OVIRT_BASE
                path = path[len(OVIRT_BASE) :] or "/"
                if raw is not None and raw.startswith(OVIRT_BASE.encode()):
                    raw = raw[len(OVIRT_BASE) :] or b"/"
                else:
                    raw = None
            if path != scope["path"] or view is not None:
                scope = dict(scope, path=path)
                if raw is not None:
                    scope["raw_path"] = raw
                else:
                    scope.pop("raw_path", None)
                scope[VIEW], scope[BASE] = view, base
        await self.app(scope, receive, send)
