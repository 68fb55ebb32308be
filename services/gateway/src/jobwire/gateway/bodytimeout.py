"""A request body that stops arriving is dropped: each read of it waits at most ``body_read_timeout``.

uvicorn waits for a promised body forever, so a client that sends headers and part of a body (or none)
would hold a connection and a handler open for as long as it likes. Only the body is timed: once it is
complete, ``receive`` is how a streaming response hears of a disconnect and may wait indefinitely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send


class BodyTimeout(HTTPException):
    status_code = 408


def body_timeout(seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware factory: a 408 problem (and a closed connection) when the body stalls ``seconds``."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            complete = False

            async def timed() -> ReceiveMessage:
                nonlocal complete
                if complete:
                    return await receive()
                try:
                    # a deadline on this task, not wait_for's new task per read of the body
                    async with asyncio.timeout(seconds):
                        message = await receive()
                except TimeoutError:
                    complete = True
                    raise BodyTimeout(
                        detail=f"the request body stopped arriving for {seconds:g} s; it was dropped",
                        headers={"Connection": "close"},  # the rest of the body never comes: no reuse
                    ) from None
                if message["type"] != "http.request" or not message.get("more_body", False):
                    complete = True
                return message

            await app(scope, timed, send)

        return middleware

    return factory
