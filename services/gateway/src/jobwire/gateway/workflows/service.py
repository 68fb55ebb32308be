"""Submitting and reading workflows. A workflow is checked whole (names, cycles, the jobs it names
outside itself, feasibility, quotas), then published as one ``SubmitWorkflow`` that the scheduler
stores in one transaction; nothing is written here."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.contracts.v1 import workflows
from jobwire.store import queries, quotas
from jobwire.store import workflows as store

from ..jobs import after, batch
from ..problems import (
    InvalidParameter,
    NotFound,
    Problem,
    TooManyRequests,
    UnsupportedMediaType,
    invalid_body,
)
from ..resources import Resources
from ..waiters import wait


class InvalidWorkflow(Problem):
    status, slug, title = 422, "invalid-workflow", "The workflow cannot be run as given"


class WorkflowNotFound(NotFound):
    slug, title = "workflow-not-found", "Workflow not found"


def parse(body: bytes, content_type: str | None) -> v1.WorkflowSpec:
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send the workflow as application/json, not {media!r}")
    try:
        return v1.decode_strict(body, v1.WorkflowSpec)
    except msgspec.MsgspecError as e:
        raise invalid_body(e) from None


def plan(spec: v1.WorkflowSpec) -> tuple[list[int], set[str]]:
    """``workflows.plan``, its refusal as a 422 listing every problem with its path."""
    try:
        return workflows.plan(spec)
    except v1.WorkflowInvalid as e:
        errors = [{"path": path, "detail": text} for path, text in e.problems]
        raise InvalidWorkflow(str(e), extra={"path": errors[0]["path"], "errors": errors}) from None


async def submit(res: Resources, spec: v1.WorkflowSpec, *, owner: str) -> v1.WorkflowSubmitted:
    order, outside = plan(spec)
    await batch.check_feasible(res, spec.jobs, owner)
    named_outside = [
        (f"$.jobs[{i}].after[{k}].job", d.job)
        for i, job in enumerate(spec.jobs)
        for k, d in enumerate(job.after)
        if d.job in outside
    ]
    await after.check(res, owner, named_outside)
    ids = {job.name: v1.new_job_id() for job in spec.jobs if job.name is not None}
    at = datetime.now(UTC)
    jobs = []
    for i in order:
        job = spec.jobs[i]
        named = [msgspec.structs.replace(d, job=ids.get(d.job, d.job)) for d in job.after]
        assert job.name is not None  # plan refused a job without one
        jobs.append(
            v1.SubmitJob(
                job_id=ids[job.name],
                spec=msgspec.structs.replace(job, after=named),
                owner=owner,
                submitted_at=at,
            )
        )
    command = v1.SubmitWorkflow(
        workflow_id=v1.new_job_id(), jobs=jobs, name=spec.name, owner=owner, submitted_at=at
    )
    payload = v1.encode(command)
    if len(payload) > res.bus.nc.max_payload:
        raise batch.BatchTooLarge(
            f"the workflow encodes to {len(payload)} bytes, over the bus's {res.bus.nc.max_payload}: "
            "split it (a later workflow's jobs may name an earlier one's job ids in `after`)"
        )
    try:
        await res.admissions.admit_all(owner, [(j.job_id, j.spec.resources.gpus_total) for j in jobs])
    except quotas.QuotaExceeded as e:
        raise TooManyRequests(
            f"{e.detail}; this workflow has {len(jobs)} jobs",
            extra={"limit": e.limit},
            headers={"Retry-After": str(e.retry_after)},
        ) from None
    last = jobs[-1].job_id  # events follow the one commit: the last job's means all are stored
    with res.waiters.watch(last, lambda ev: isinstance(ev, v1.JobTransitioned)) as stored:
        try:
            await res.bus.publish(sj.cmd_subject("submit_workflow"), payload, msg_id=command.workflow_id)
        except Exception:
            for submitted in jobs:
                res.admissions.release(owner, submitted.job_id)
            raise
        event = await wait(stored, res.settings.accept_timeout)
    names = {spec.jobs[i].name or "": ids[spec.jobs[i].name or ""] for i in order}
    return v1.WorkflowSubmitted(id=command.workflow_id, jobs=names, accepted=event is not None)


async def show(res: Resources, workflow_id: str, *, owner: str | None) -> v1.WorkflowView:
    async with res.session() as session:
        found = await store.get_workflow(session, workflow_id, owner=owner)
    if found is None:
        raise WorkflowNotFound(f"there is no workflow {workflow_id!r}")
    return found


async def list_workflows(
    res: Resources, *, owner: str | None, limit: int, cursor: str | None
) -> v1.WorkflowPage:
    async with res.session() as session:
        try:
            return await store.list_workflows(session, owner=owner, limit=limit, cursor=cursor)
        except queries.InvalidCursor as e:
            raise InvalidParameter(f"query parameter `cursor`: {e}") from None
