"""Serving the app with uvicorn: from the command line, or in-process (tests, the all-in-one stack)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from litestar import Litestar

from .app import create_app
from .settings import GatewaySettings


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the host process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serve(
    settings: GatewaySettings, *, app: Litestar | None = None, port: int | None = None
) -> AsyncIterator[str]:
    """Serve the gateway in this event loop until the block ends; yields its base URL.

    ``port`` defaults to ``settings.port``; pass 0 for a free port (tests).
    """
    app = app or create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port if port is None else port))
    host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        lifespan="on",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error here
                raise RuntimeError("the gateway stopped during startup")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
