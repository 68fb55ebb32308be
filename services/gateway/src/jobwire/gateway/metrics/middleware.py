"""Counts and times job submissions (``POST /v1/jobs``) by the status they were answered with.

An ASGI middleware rather than code in the submit handler: refusals by the guard (401, 403) and by the
body limit (413) never reach the handler, and an operator wants them in the same series.
"""

from __future__ import annotations

import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from jobwire.runtime.metrics import SUBMIT_SECONDS, SUBMITS

SUBMIT_PATHS = ("/v1/jobs", "/v1/jobs/")


def submit_metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST" or scope["path"] not in SUBMIT_PATHS:
            await app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                SUBMIT_SECONDS.observe(time.perf_counter() - began)
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            SUBMITS.labels(status=str(status[0])).inc()

    return middleware
