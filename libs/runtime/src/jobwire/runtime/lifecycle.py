"""Process lifecycle: logging, signal handling, and a clean stop of one async service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from .metrics import role_of, serve_metrics


def setup_logging(service: str) -> None:
    level = os.environ.get("JOBWIRE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
    )
    logging.getLogger("nats").setLevel(logging.WARNING)


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]], service: str) -> None:
    """Run ``main(stop)``; SIGINT/SIGTERM set ``stop`` so the service drains and exits cleanly.

    With ``JOBWIRE_METRICS_PORT`` set, the process's own metrics are served there while it runs.
    """
    setup_logging(service)
    serve_metrics(role=role_of(service))

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
