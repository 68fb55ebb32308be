"""The outbox relay: publish what a committed batch queued, forget what was sent, purge deleted jobs.

Rows are written in the batch's transaction and published only after its commit; a row whose publish
failed stays in the outbox for the next tick, one that was sent is deleted in the next transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus
from jobwire.store import jobrecs
from jobwire.store.models import OutboxRow

log = logging.getLogger(__name__)

#: (row id, subject, payload, Nats-Msg-Id, encoded extra headers)
OutboxMessage = tuple[int, str, bytes, str | None, bytes | None]
#: published rows forgotten at once when this many wait (else on the next tick)
FORGET_AT = 500


class Relay:
    """Publishes committed outbox rows and remembers which ones to delete in the next transaction."""

    def __init__(self, bus: Bus, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.bus = bus
        self.sessions = sessions
        #: rows published since the last transaction: deleted at the start of the next one
        self.published: list[int] = []
        #: a publish failed or a predecessor left rows: the next tick flushes the outbox
        self.pending = True

    async def forget_published(self, conn: AsyncConnection | AsyncSession, *, due: bool = True) -> None:
        """Delete the rows already sent, inside the caller's transaction: when ``due`` (the pipeline's
        tick) or once ``FORGET_AT`` wait, not in every batch, where this statement was one of a lone
        submit's seven. A row sent and not yet forgotten is sent again by a scheduler that starts
        (``flush``), with its message id, so JetStream's de-duplication drops the copy."""
        if self.published and (due or len(self.published) >= FORGET_AT):
            await jobrecs.delete_outbox(conn, self.published)
            self.published = []

    async def publish(self, rows: list[OutboxMessage]) -> None:
        """Publish committed outbox rows in order; failures stay in the outbox for the next tick."""
        sent: list[int] = []
        try:
            futures = [
                self.bus.js.publish(
                    subject,
                    payload,
                    headers={
                        sj.MSG_ID_HEADER: msg_id or str(row_id),
                        **(v1.decode(hdrs, dict[str, str]) if hdrs else {}),
                    },
                )
                for row_id, subject, payload, msg_id, hdrs in rows
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
            for (row_id, subject, *_), result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("publish to %s failed (%s); kept in the outbox", subject, result)
                    self.pending = True
                else:
                    sent.append(row_id)
        finally:
            self.published.extend(sent)

    async def flush(self) -> None:
        """Publish whatever a previous run or a failed publish left in the outbox."""
        self.pending = False
        async with self.sessions() as session:
            result = await session.execute(select(OutboxRow).order_by(OutboxRow.id).limit(10_000))
            rows = [(r.id, r.subject, r.payload, r.msg_id, r.headers) for r in result.scalars()]
        done = set(self.published)
        rows = [r for r in rows if r[0] not in done]
        if rows:
            log.info("publishing %d outbox messages left from before", len(rows))
            await self.publish(rows)

    async def purge(self, job_id: str, artifacts: list[str]) -> None:
        """Remove a deleted job's logs, events and artifacts from JetStream."""
        try:
            await self.bus.js.purge_stream(sj.LOG_STREAM, subject=sj.job_logs_filter(job_id))
            await self.bus.js.purge_stream(sj.EVT_STREAM, subject=sj.job_events_filter(job_id))
            store = await self.bus.artifacts()
            for name in artifacts:
                with contextlib.suppress(Exception):
                    await store.delete(sj.artifact_object(job_id, name))
        except Exception as e:
            log.warning("could not purge everything of deleted job %s: %s", job_id, e)
