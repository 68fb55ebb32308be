"""Register a process as a NATS micro service so ``nats micro ls`` lists it with its stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from jobwire.contracts.v1 import codec


async def register(
    nc: Client,
    *,
    name: str,
    version: str,
    description: str,
    status: Callable[[], Any],
    metadata: dict[str, str] | None = None,
) -> Service:
    """A service with one ``status`` endpoint answering ``status()`` as JSON."""
    svc = await add_service(nc, name=name, version=version, description=description, metadata=metadata or {})

    async def handle(req: Request) -> None:
        await req.respond(codec.encode(status()))

    group = svc.add_group(name=f"jobwire.svc.{name}")
    await group.add_endpoint(name="status", handler=handle)
    return svc
