"""A JSON answer encoded beforehand, sent in the pieces it is kept in.

Such answers are big (the full port list is 25 MB at 30,000 ports) and oVirt engine
asks for them on every vNIC allocate, often several at once. Sent side by side they
keep every listing client and the engine's event loop busy at once, and a port
create waiting for a CPU behind them took up to 100 ms instead of 10. So they take
turns: one big body is sent at a time, the others wait for theirs. A turn ends when
its body is sent or after TURN_S, whichever comes first: a client that reads slowly
(or not at all) finishes its body beside the others and never holds them up.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

TURN_S = 0.25  # at most this long does one body keep the others waiting

_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _turn() -> asyncio.Semaphore:
    """The running event loop's one turn for big bodies (a semaphore binds to a loop)."""
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Semaphore(1)
    return turn


class EncodedPieces(Response):
    """``b"".join(pieces)`` is the body: sent piece by piece, with its Content-Length
    (so not chunked), each piece waiting for the client to take the ones before, and
    in its turn (see the module's docstring)."""

    media_type = "application/json"

    def __init__(self, pieces: Sequence[bytes], status_code: int = 200) -> None:
        self.pieces = pieces
        super().__init__(
            status_code=status_code, headers={"content-length": str(sum(map(len, pieces)))}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        turn = _turn()
        await turn.acquire()
        ended = False

        def end_turn() -> None:
            nonlocal ended
            if not ended:
                ended = True
                turn.release()

        timer = asyncio.get_running_loop().call_later(TURN_S, end_turn)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            for piece in self.pieces:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            timer.cancel()
            end_turn()
