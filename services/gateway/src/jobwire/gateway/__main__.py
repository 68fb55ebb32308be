"""``jobwire-gateway``: serve the REST API with uvicorn on ``JOBWIRE_GATEWAY_HOST``/``_PORT``."""

from __future__ import annotations

import uvicorn

from jobwire.runtime.lifecycle import setup_logging

from .app import create_app
from .settings import gateway_settings


def main() -> None:
    setup_logging("gateway")
    settings = gateway_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep setup_logging's format
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
    )


if __name__ == "__main__":
    main()
