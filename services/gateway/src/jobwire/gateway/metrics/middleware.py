"""Counts and times submissions (``POST /v1/jobs``, ``/v1/jobs:batch``, ``/v1/workflows``) by the status
they were answered with and their kind.

An ASGI middleware rather than code in the submit handler: refusals by the guard (401, 403) and by the
body limit (413) never reach the handler, and an operator wants them in the same series. An array is
told from a single job by the answer's ``Location`` (``/v1/arrays/...``), so its body is never parsed
twice.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from jobwire.runtime.metrics import SUBMIT_SECONDS, SUBMITS

#: route -> the kind its submissions are counted as
SUBMIT_KINDS = {
    "/v1/jobs": "job",
    "/v1/jobs/": "job",
    "/v1/jobs:batch": "batch",
    "/v1/jobs:batch/": "batch",
    "/v1/workflows": "workflow",
    "/v1/workflows/": "workflow",
}
ARRAY_LOCATION = b"/v1/arrays/"
#: (status, kind) -> its counter child, bound once: ``Counter.labels`` checks and joins the label values
#: under a lock on every call
_BOUND: dict[tuple[int, str], Any] = {}


def _count(status: int, kind: str) -> None:
    child = _BOUND.get((status, kind))
    if child is None:
        child = _BOUND[(status, kind)] = SUBMITS.labels(status=str(status), kind=kind)
    child.inc()


def submit_metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        kind = SUBMIT_KINDS.get(scope["path"]) if scope.get("method") == "POST" else None
        if kind is None:
            await app(scope, receive, send)
            return
        began = time.perf_counter()
        answer: list[Any] = [500, kind]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer[0] = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == b"location" and bytes(value).startswith(ARRAY_LOCATION):
                        answer[1] = "array"
                SUBMIT_SECONDS.observe(time.perf_counter() - began)
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            _count(answer[0], answer[1])

    return middleware
