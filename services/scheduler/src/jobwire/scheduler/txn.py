"""One batch = one transaction: rows touched, transitions recorded, messages queued in the outbox."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import metrics
from jobwire.store import jobrecs
from jobwire.store.jobrecs import JobRec, OutboxMsg
from jobwire.store.models import ArrayRow, JobRow, now

log = logging.getLogger(__name__)
S = v1.JobState


class Txn:
    """The unit of work of one batch. Nothing here talks to NATS: messages go to the outbox.

    Jobs are plain records (``JobRec``): handlers change them in memory, and ``write`` stores the whole
    batch with one bulk statement per kind of write, just before the commit. Those statements go to
    ``conn``, the session's own connection, as Core: through the session each took its ORM path
    (bulk-insert and autoflush machinery) for tables whose rows the session never holds.
    """

    def __init__(self, session: AsyncSession, conn: AsyncConnection | None = None) -> None:
        self.session = session
        #: where the job statements go: the connection the session is bound to (or the session itself)
        self.conn: AsyncConnection | AsyncSession = conn if conn is not None else session
        self.rows: dict[str, JobRec] = {}
        #: jobs created in this batch (inserted with their final values)
        self.new: list[JobRec] = []
        self.transitions: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = []
        self.outbox: list[OutboxMsg] = []
        #: rows to delete before the commit, with their artifact names to purge after it
        self.deleted: list[tuple[JobRec, list[str]]] = []
        #: arrays this batch read or made, by id
        self.arrays: dict[str, ArrayRow] = {}
        #: tasks of arrays whose state changed in this batch (their array counts what still lives)
        self.tasks_touched: dict[str, JobRec] = {}
        #: column values to write to arrays at the end of the batch, by array id
        self.array_updates: dict[str, dict[str, Any]] = {}
        #: jobs that ended (or were removed) in this batch: their dependents are resolved before commit
        self.ended: list[str] = []
        #: how arrays named in ``after`` ended: those closed in this batch, or before it (loaded)
        self.array_ends: dict[str, v1.JobState] = {}
        #: specs decoded in this batch, by job id (``Core.spec_of``): queued jobs keep none between batches
        self.specs: dict[str, v1.JobSpec] = {}
        self.at = now()

    async def load(self, job_ids: set[str]) -> None:
        """Fetch every row this batch will touch in one query per 500 (no N+1)."""
        missing = [i for i in job_ids if i not in self.rows]
        if missing:
            for rec in await jobrecs.load(self.conn, missing):
                self.rows[rec.id] = rec

    def add(self, row: JobRec, labels: dict[str, str]) -> None:
        """A job accepted (or an array task made) in this batch, with its labels."""
        self.rows[row.id] = row
        self.new.append(row)
        self.labels.extend({"job_id": row.id, "key": k, "value": v} for k, v in labels.items())

    async def write(self) -> None:
        """Store what the batch did (before the commit; the outbox rows get their ids)."""
        gone = [row.id for row, _ in self.deleted]
        writes = jobrecs.Writes(
            new=self.new,
            touched=list(self.rows.values()),
            transitions=self.transitions,
            labels=self.labels,
            outbox=self.outbox,
            deleted=gone,
        )
        if self.conn is not self.session:
            await self.session.flush()  # what the ORM holds goes first, as its autoflush did
        await jobrecs.write(self.conn, writes)

    async def load_arrays(self, ids: set[str]) -> None:
        """The arrays among ``ids`` (an array's id names it in commands, as a job's does)."""
        missing = [i for i in ids if i not in self.arrays]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            result = await self.session.execute(select(ArrayRow).where(ArrayRow.id.in_(chunk)))
            for row in result.scalars():
                self.arrays[row.id] = row

    async def load_array_ends(self, ids: set[str]) -> None:
        """How the ended arrays among ``ids`` ended (dependencies of jobs submitted in this batch):
        ``cancelled`` when cancelled, else ``failed`` when a task did not succeed, else ``succeeded``;
        one query for the arrays, one for their tasks."""
        await self.load_arrays(ids)
        closed = [i for i in ids if i in self.arrays and self.arrays[i].ended_at is not None]
        undone = [i for i in closed if not self.arrays[i].cancelled]
        failed: set[str] = set()
        if undone:
            query = (
                select(JobRow.array_id)
                .where(JobRow.array_id.in_(undone), JobRow.state != S.SUCCEEDED.value)
                .distinct()
            )
            failed = {a for a in await self.session.scalars(query) if a is not None}
        for array_id in closed:
            cancelled = self.arrays[array_id].cancelled
            state = S.CANCELLED if cancelled else (S.FAILED if array_id in failed else S.SUCCEEDED)
            self.array_ends[array_id] = state

    async def write_arrays(self) -> None:
        """Apply ``array_updates``: to rows this batch holds, else as one UPDATE per array."""
        for array_id, values in self.array_updates.items():
            row = self.arrays.get(array_id)
            if row is not None:
                for name, value in values.items():
                    setattr(row, name, value)
            else:
                await self.session.execute(update(ArrayRow).where(ArrayRow.id == array_id).values(**values))
        self.array_updates.clear()

    def emit(self, subject: str, message: Any, msg_id: str, headers: dict[str, str] | None = None) -> None:
        self.outbox.append(
            OutboxMsg(
                subject=subject,
                payload=v1.encode(message),
                msg_id=msg_id,
                headers=v1.encode(headers) if headers else None,
            )
        )

    def transition(
        self,
        row: JobRec,
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
            self.ended.append(row.id)
        self.record(row, state, reason, at=when)
        if row.array_id is not None:
            self.tasks_touched[row.id] = row
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

    def record(
        self, row: JobRec, state: v1.JobState, reason: str | None, *, at: datetime | None = None
    ) -> None:
        """Add ``state`` to the job's history (with its node, and the exit code where an attempt
        ends). ``transition`` calls it; alone it records how an attempt ended when the job moves on at
        once (a retried failure goes from running to queued, and is shown failed in its history)."""
        ends = state in v1.TERMINAL or state is S.LOST
        self.transitions.append(
            {
                "job_id": row.id,
                "state": state.value,
                "at": at or self.at,
                "reason": reason,
                "attempt": row.attempt,
                "node": row.node if row.attempt > 0 else None,
                "exit_code": row.exit_code if ends else None,
            }
        )

    def first_transition(self, row: JobRec, queue_position: int | None) -> None:
        """The ``queued`` record and event of a newly accepted job."""
        self.transitions.append(  # every row of the one executemany names the same columns
            {
                "job_id": row.id,
                "state": row.state,
                "at": row.created_at,
                "reason": row.reason,
                "attempt": 0,
                "node": None,
                "exit_code": None,
            }
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
