"""``/health``: the process is up. ``/ready``: it can serve (NATS connected, the database answers)."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, get
from sqlalchemy import text

from ..params import Res
from ..problems import NotReady

CHECK_TIMEOUT = 2.0


class Status(msgspec.Struct, kw_only=True):
    status: str


class HealthController(Controller):
    tags = ["health"]

    @get("/health", summary="Liveness", opt={"public": True})
    async def health(self) -> Status:
        return Status(status="ok")

    @get("/ready", summary="Readiness: NATS connected and the database answers", opt={"public": True})
    async def ready(self, res: Res) -> Status:
        if not res.bus.nc.is_connected:
            raise NotReady("not connected to NATS")
        try:
            async with asyncio.timeout(CHECK_TIMEOUT), res.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as e:
            raise NotReady(f"the database does not answer: {type(e).__name__}") from None
        return Status(status="ready")
