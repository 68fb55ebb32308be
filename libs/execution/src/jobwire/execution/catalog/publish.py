"""Keeping a node's catalog in the ``jobwire_programs`` bucket, where the gateway reads it.

The key is the node name (the executor's NATS user may write only that key). The catalog is put again
after every change and at least every :data:`REPUBLISH` seconds, so the bucket's TTL drops only the
catalogs of nodes that are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from jobwire.contracts.v1 import codec
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import PROGRAM_TTL, Bus

from .model import Catalog

log = logging.getLogger(__name__)
REPUBLISH = PROGRAM_TTL / 6


async def publish(bus: Bus, node: str, catalog: Catalog) -> None:
    kv = await bus.js.key_value(sj.PROGRAM_BUCKET)
    await kv.put(sj.check_token(node, "node"), codec.encode(catalog.message(node)))


async def keep_published(bus: Bus, node: str, catalog: Catalog, stop: asyncio.Event) -> None:
    """Rescan every ``catalog.interval`` seconds and publish what changed, until ``stop`` is set."""
    last = 0.0
    dirty = True
    failing = False
    while not stop.is_set():
        if catalog.scanned_at is None or time.time() - catalog.scanned_at >= 0.9 * catalog.interval:
            dirty = await catalog.refresh() or dirty
        if dirty or time.monotonic() - last >= REPUBLISH:
            try:
                await publish(bus, node, catalog)
                dirty, last = False, time.monotonic()
                if failing:
                    log.info("program catalog of %s published again", node)
                failing = False
            except Exception as e:
                if not failing:
                    log.warning("publishing the program catalog of %s failed (retrying): %s", node, e)
                failing = True
        wait = min(catalog.interval, REPUBLISH) if not failing else min(catalog.interval, 10.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
