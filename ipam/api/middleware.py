"""ASGI middleware: refuse oversized bodies before parsing, log one line per request."""

from __future__ import annotations

import json
import logging
import time

LOG = logging.getLogger("ipam.api.access")


def _error(status: int, type_: str, message: str) -> bytes:
    return json.dumps({"NeutronError": {"type": type_, "message": message, "detail": ""}}).encode()


class BodyLimitAndAccessLog:
    def __init__(self, app, max_body: int) -> None:  # type: ignore[no-untyped-def]
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, length = time.monotonic(), 500, 0

        async def send_logged(message) -> None:  # type: ignore[no-untyped-def]
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

            async def replay():  # type: ignore[no-untyped-def]
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
            LOG.info(
                '%s "%s %s" status: %d len: %d time: %.4f',
                client[0],
                scope["method"],
                path,
                status,
                length,
                time.monotonic() - start,
            )

    async def _read_body(self, receive) -> bytes | None:  # type: ignore[no-untyped-def]
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
