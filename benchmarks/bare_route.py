"""The bare-route ceiling: a Litestar app whose one route decodes a JobSpec with msgspec and answers 201.

Served by ``python -m benchmarks.bare_route PORT WORKERS`` with the gateway's own uvicorn settings (uvloop,
httptools, the same worker count), so the ratio gateway / bare route is what jobwire adds to a request.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, post

from jobwire.contracts import v1


@post("/v1/jobs", status_code=201)
async def submit(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """What the gateway cannot avoid: read the body, decode it strictly, answer with an id."""
    spec = msgspec.json.decode(await request.body(), type=v1.JobSpec)
    body = msgspec.json.encode({"id": str(uuid.uuid4()), "name": spec.name, "state": "queued"})
    return Response(body, status_code=201, media_type="application/json")


def app() -> Litestar:
    return Litestar([submit], openapi_config=None)


def serve(target: Litestar | str, port: int, **settings: Any) -> None:
    """Under the gateway's own uvicorn settings (uvloop, httptools, no access log) on loopback."""
    uvicorn.run(
        target,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level="warning",
        lifespan="on",
        **settings,
    )


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    if workers > 1:
        serve("benchmarks.bare_route:app", port, factory=True, workers=workers)
    else:
        serve(app(), port)


if __name__ == "__main__":
    main()
