"""One batch = one transaction: rows touched, transitions recorded, messages queued in the outbox."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import metrics
from jobwire.store.models import JobRow, OutboxRow, TransitionRow, now

log = logging.getLogger(__name__)
S = v1.JobState


class Txn:
    """The unit of work of one batch. Nothing here talks to NATS: messages go to the outbox."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.rows: dict[str, JobRow] = {}
        self.outbox: list[OutboxRow] = []
        #: rows to delete before the commit, with their artifact names to purge after it
        self.deleted: list[tuple[JobRow, list[str]]] = []
        self.at = now()

    async def load(self, job_ids: set[str]) -> None:
        """Fetch every row this batch will touch in one query (no N+1)."""
        missing = [i for i in job_ids if i not in self.rows]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            result = await self.session.execute(select(JobRow).where(JobRow.id.in_(chunk)))
            for row in result.scalars():
                self.rows[row.id] = row

    def emit(self, subject: str, message: Any, msg_id: str, headers: dict[str, str] | None = None) -> None:
        row = OutboxRow(
            subject=subject,
            payload=v1.encode(message),
            msg_id=msg_id,
            headers=v1.encode(headers) if headers else None,
        )
        self.session.add(row)
        self.outbox.append(row)

    def transition(
        self,
        row: JobRow,
        state: v1.JobState,
        reason: str | None = None,
        *,
        at: datetime | None = None,
        queue_position: int | None = None,
    ) -> None:
        """Move a job through the one state machine, record it, and queue its event."""
        previous = S(row.state)
        v1.check_transition(previous, state)
        when = at or self.at
        row.state = state.value
        row.reason = reason
        if state is S.RUNNING and row.started_at is None:
            row.started_at = when
            wait = (when - row.created_at).total_seconds()
            metrics.SUBMIT_TO_RUNNING.labels(backend=row.backend or "unknown").observe(max(0.0, wait))
        if v1.is_finished(state, attempts_left=row.attempt < row.max_attempts):
            row.ended_at = when
        self.session.add(
            TransitionRow(job_id=row.id, state=state.value, at=when, reason=reason, attempt=row.attempt)
        )
        event = v1.JobTransitioned(
            job_id=row.id,
            state=state,
            previous=previous,
            at=when,
            attempt=row.attempt,
            node=row.node,
            reason=reason,
            exit_code=row.exit_code,
            queue_position=queue_position,
            owner=row.owner,
        )
        # hold and release may repeat a state within one attempt (queued, starting): its own id
        # and a requeue may queue one attempt more than once
        requeue = state is S.QUEUED and previous is not S.LOST
        again = (when.timestamp(),) if S.HELD in (previous, state) or requeue else ()
        msg_id = sj.attempt_msg_id(row.id, row.attempt, state.value, *again)
        self.emit(sj.event_subject(row.id, state.value), event, msg_id)

    def first_transition(self, row: JobRow, queue_position: int | None) -> None:
        """The ``queued`` record and event of a newly accepted job."""
        self.session.add(
            TransitionRow(job_id=row.id, state=row.state, at=row.created_at, reason=row.reason, attempt=0)
        )
        event = v1.JobTransitioned(
            job_id=row.id,
            state=S(row.state),
            previous=None,
            at=row.created_at,
            node=row.node,
            reason=row.reason,
            queue_position=queue_position,
            owner=row.owner,
        )
        self.emit(sj.event_subject(row.id, row.state), event, sj.attempt_msg_id(row.id, 0, row.state))
