"""The read side of dependencies and workflows: which named jobs a caller may depend on, and a
workflow with its jobs, states and edges, each in a fixed number of queries (one per 500 ids)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from . import arrays, queries
from .models import ArrayRow, JobRow, WorkflowRow

S = v1.JobState
#: ids per ``IN (...)`` list
CHUNK = 500


async def owned_job_ids(session: AsyncSession, ids: Iterable[str], owner: str) -> set[str]:
    """Those of ``ids`` that are jobs or arrays of ``owner`` (another owner's is as absent as none)."""
    wanted = sorted({i for i in ids if v1.is_job_id(i)})
    found: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        query = select(JobRow.id).where(JobRow.id.in_(chunk), JobRow.owner == owner)
        found.update(await session.scalars(query))
        arrays = select(ArrayRow.id).where(ArrayRow.id.in_(chunk), ArrayRow.owner == owner)
        found.update(await session.scalars(arrays))
    return found


async def get_workflow(
    session: AsyncSession, workflow_id: str, *, owner: str | None = None
) -> v1.WorkflowView | None:
    """The workflow, its jobs in dependency order and the edges between them; None when it does not
    exist (or, with ``owner``, belongs to someone else). A deleted job is left out."""
    if not v1.is_job_id(workflow_id):
        return None
    query = select(WorkflowRow).where(WorkflowRow.id == workflow_id)
    if owner is not None:
        query = query.where(WorkflowRow.owner == owner)
    wf = await session.scalar(query)
    if wf is None:
        return None
    names = v1.decode(wf.jobs, dict[str, str])
    ids = list(names.values())
    rows: dict[str, JobRow] = {}
    for start in range(0, len(ids), CHUNK):
        found = await session.scalars(select(JobRow).where(JobRow.id.in_(ids[start : start + CHUNK])))
        rows.update((row.id, row) for row in found)
    array_jobs = await _arrays(session, [i for i in ids if i not in rows])
    name_of = {job_id: name for name, job_id in names.items()}
    jobs: list[v1.WorkflowJob] = []
    edges: list[v1.WorkflowEdge] = []
    for name, job_id in names.items():
        row = rows.get(job_id)
        if row is None:
            if job_id in array_jobs:
                jobs.append(_named(array_jobs[job_id], name))
            continue
        jobs.append(
            v1.WorkflowJob(
                name=name,
                id=job_id,
                state=v1.JobState(row.state),
                reason=row.reason,
                exit_code=row.exit_code,
                started_at=row.started_at,
                ended_at=row.ended_at,
            )
        )
        for dep in v1.decode(row.spec, v1.JobSpec).after:
            edges.append(v1.WorkflowEdge(from_=name_of.get(dep.job, dep.job), to=name, when=dep.when))
    counts = Counter(job.state.value for job in jobs)
    return v1.WorkflowView(
        id=wf.id,
        owner=wf.owner,
        name=wf.name,
        created_at=wf.created_at,
        counts=dict(sorted(counts.items())),
        jobs=jobs,
        edges=edges,
    )


async def _arrays(session: AsyncSession, ids: list[str]) -> dict[str, v1.WorkflowJob]:
    """The arrays among ``ids`` (workflow members that are arrays), each shown as one job: ``succeeded``
    once every task did, ``failed`` or ``cancelled`` once ended otherwise, else ``running`` while a
    task runs, else as its unmade tasks are; the reason counts its tasks. One query per array."""
    out: dict[str, v1.WorkflowJob] = {}
    for array_id in ids:
        row = await arrays.get_array_row(session, array_id)
        if row is None:
            continue
        counts = await arrays.array_counts(session, row)
        ok = counts.get("succeeded", 0)
        active = counts.get("running", 0) + counts.get("starting", 0)
        if row.ended_at is not None:
            state = S.CANCELLED if row.cancelled else S.SUCCEEDED if ok == row.count else S.FAILED
        else:
            state = S.RUNNING if active else arrays.unmade_state(row)
        reason = f"array: {ok} of {row.count} tasks succeeded" + (f", {active} running" if active else "")
        out[array_id] = v1.WorkflowJob(
            name="", id=array_id, state=state, reason=reason, ended_at=row.ended_at
        )
    return out


def _named(job: v1.WorkflowJob, name: str) -> v1.WorkflowJob:
    job.name = name
    return job


async def list_workflows(
    session: AsyncSession, *, owner: str | None, limit: int, cursor: str | None
) -> v1.WorkflowPage:
    """Newest first, ``limit`` at a time after ``cursor`` (``queries``' opaque id cursor); with
    ``owner``, only theirs. One query on ``ix_workflows_owner_id`` (or the primary key)."""
    query = select(WorkflowRow).order_by(WorkflowRow.id.desc()).limit(limit + 1)
    if owner is not None:
        query = query.where(WorkflowRow.owner == owner)
    if cursor is not None:
        query = query.where(WorkflowRow.id < queries.decode_cursor(cursor))
    rows = list(await session.scalars(query))
    items = [
        v1.WorkflowSummary(
            id=row.id,
            owner=row.owner,
            name=row.name,
            created_at=row.created_at,
            jobs=len(v1.decode(row.jobs, dict[str, str])),
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return v1.WorkflowPage(items=items, next_cursor=queries.encode_cursor(items[-1].id) if more else None)
