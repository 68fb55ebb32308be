"""``jobwire-gateway``: serve the REST API with uvicorn on ``JOBWIRE_GATEWAY_HOST``/``_PORT``.

uvloop and httptools do the event loop and HTTP parsing (uvicorn's fast path). With
``JOBWIRE_GATEWAY_WORKERS`` > 1 (0: one per core) uvicorn forks that many processes on one socket; each
is a whole gateway (the gateway keeps no state a request needs from another).
"""

from __future__ import annotations

import os

import uvicorn
from litestar import Litestar

from jobwire.runtime.lifecycle import setup_logging

from .app import create_app
from .settings import gateway_settings


def app() -> Litestar:
    """What each worker process serves (uvicorn's workers need an import string)."""
    setup_logging("gateway")
    return create_app(gateway_settings())


def main() -> None:
    setup_logging("gateway")
    settings = gateway_settings()
    workers = settings.workers or os.cpu_count() or 1
    uvicorn.run(
        "jobwire.gateway.__main__:app" if workers > 1 else create_app(settings),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,  # keep setup_logging's format
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
    )


if __name__ == "__main__":
    main()
