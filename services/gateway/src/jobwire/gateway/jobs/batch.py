"""``POST /v1/jobs:batch``: up to 10,000 specs stored together or not at all, each with its own id.

One ``SubmitJobs`` command carries them all, so the scheduler stores them in one transaction; its events
are published only after that commit, so the last job's ``queued`` event means every job is stored.
A batch is admitted against the owner's quotas whole (all or none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store import quotas

from ..problems import InvalidBody, Problem, TooManyRequests, UnsupportedMediaType, invalid_body
from ..programs import service as programs
from ..resources import Resources
from ..waiters import wait
from . import after, feasible

MAX_BATCH = 10_000


class BatchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``{"jobs": [JobSpec, ...]}`` (a bare JSON array of specs is taken too)."""

    jobs: list[v1.JobSpec]


class BatchSubmitted(msgspec.Struct, kw_only=True):
    #: one per spec, in the order given
    ids: list[str]
    #: the scheduler stored them all (201); otherwise they are durably queued together (202)
    accepted: bool


class BatchTooLarge(Problem):
    status, slug, title = 413, "batch-too-large", "Batch too large"


def parse_batch(body: bytes, content_type: str | None) -> list[v1.JobSpec]:
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send the batch as application/json, not {media!r}")
    try:
        shape: Any = BatchRequest | list[v1.JobSpec]
        parsed = v1.decode_strict(body, shape)
    except msgspec.MsgspecError as e:
        raise invalid_body(e) from None
    specs = parsed.jobs if isinstance(parsed, BatchRequest) else parsed
    if not 1 <= len(specs) <= MAX_BATCH:
        raise InvalidBody(f"a batch holds 1 to {MAX_BATCH} job specs, not {len(specs)}")
    return specs


async def check_feasible(res: Resources, specs: list[v1.JobSpec], owner: str) -> None:
    """422 for the first of ``specs`` (at ``$.jobs[i]``) naming a program no node offers or asking
    for what no registered node could ever give ``owner``; each distinct program and spec is checked once."""
    for spec in {s.program: s for s in specs if s.program is not None}.values():
        await programs.check_offered(res, spec)  # once per program named
    seen: set[bytes] = set()
    for i, spec in enumerate(specs):
        shape = v1.encode(spec)
        if shape in seen:
            continue  # the same spec was found feasible already
        seen.add(shape)
        why = await res.nodes.refusal(spec, owner)
        if why is not None:
            path = f"$.jobs[{i}]" + (why.path or "$")[1:]
            raise feasible.NoNodeFits(f"job {i}: {why.detail} (see GET /v1/nodes)", extra={"path": path})


async def submit_batch(res: Resources, specs: list[v1.JobSpec], *, owner: str) -> BatchSubmitted:
    await check_feasible(res, specs, owner)
    await after.check_specs(res, owner, specs)
    at = datetime.now(UTC)
    jobs = [v1.SubmitJob(job_id=v1.new_job_id(), spec=s, owner=owner, submitted_at=at) for s in specs]
    command = v1.SubmitJobs(batch_id=v1.new_job_id(), jobs=jobs)
    payload = v1.encode(command)
    if len(payload) > res.bus.nc.max_payload:
        raise BatchTooLarge(
            f"the batch encodes to {len(payload)} bytes, over the bus's {res.bus.nc.max_payload}: "
            "send it in smaller batches"
        )
    ids = [j.job_id for j in jobs]
    try:
        await res.admissions.admit_all(owner, [(j.job_id, j.spec.resources.gpus_total) for j in jobs])
    except quotas.QuotaExceeded as e:
        raise TooManyRequests(
            f"{e.detail}; this batch asks for {len(jobs)} jobs",
            extra={"limit": e.limit},
            headers={"Retry-After": str(e.retry_after)},
        ) from None
    with res.waiters.watch(ids[-1], lambda ev: isinstance(ev, v1.JobTransitioned)) as stored:
        try:
            await res.bus.publish(sj.cmd_subject("submit_batch"), payload, msg_id=command.batch_id)
        except Exception:
            for job_id in ids:
                res.admissions.release(owner, job_id)
            raise
        event = await wait(stored, res.settings.accept_timeout)
    return BatchSubmitted(ids=ids, accepted=event is not None)
