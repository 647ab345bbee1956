"""A JSON answer encoded beforehand, sent in the pieces it is kept in."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class EncodedPieces(Response):
    """``b"".join(pieces)`` is the body: sent piece by piece, with its Content-Length
    (so not chunked), each piece waiting for the client to take the ones before."""

    media_type = "application/json"

    def __init__(self, pieces: Sequence[bytes], status_code: int = 200) -> None:
        self.pieces = pieces
        super().__init__(
            status_code=status_code, headers={"content-length": str(sum(map(len, pieces)))}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        for piece in self.pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
