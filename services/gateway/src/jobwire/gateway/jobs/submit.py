"""``POST /v1/jobs``: validate, name, publish ``SubmitJob``, then wait briefly for the scheduler.

Nothing is written here: the command is durably stored in JOBWIRE_CMD before we answer, and the scheduler
stores the job. If it answers in time the client gets the stored job (201), else the job as submitted (202).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store import quotas
from jobwire.store.models import ArrayRow

from ..problems import InvalidBody, InvalidParameter, TooManyRequests, UnsupportedMediaType, invalid_body
from ..resources import Resources
from ..waiters import wait
from .lookup import load_job

MAX_IDEMPOTENCY_KEY = 255


@dataclass
class Submitted:
    job: v1.Job
    #: the scheduler stored the job (201); otherwise it is only durably queued (202)
    accepted: bool
    #: an earlier request with the same Idempotency-Key made this job
    replayed: bool = False


def parse_spec(body: bytes, content_type: str | None) -> v1.JobSpec:
    """A JobSpec from the body, refusing unknown fields; every failure is a 4xx problem."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send the JobSpec as application/json, not {media!r}")
    if not body.strip():
        raise InvalidBody("the request body is empty: send a JobSpec JSON object")
    try:
        return v1.decode_strict(body, v1.JobSpec)
    except msgspec.MsgspecError as e:
        raise invalid_body(e) from None


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidParameter(
            f"header `Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return key


def _entry_key(owner: str, key: str) -> str:
    return hashlib.sha256(f"{owner}:{key}".encode()).hexdigest()


async def claimed_id(res: Resources, owner: str, key: str) -> str | None:
    """The job id an earlier request with ``owner``'s key made, if any."""
    kv = await res.bus.idempotency()
    try:
        entry = await kv.get(_entry_key(owner, key))
    except KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


async def admit(res: Resources, owner: str, job_id: str, spec: v1.JobSpec) -> None:
    """Take a place in ``owner``'s quotas, or answer 429 with nothing published or claimed."""
    try:
        await res.admissions.admit(owner, job_id, gpus=spec.resources.gpus_total)
    except quotas.QuotaExceeded as e:
        raise TooManyRequests(
            f"{e.detail}; try again later",
            extra={"limit": e.limit},
            headers={"Retry-After": str(e.retry_after)},
        ) from None


async def claim_id(res: Resources, owner: str, key: str, job_id: str) -> tuple[str, bool]:
    """The job id for ``owner``'s key: ours if we are first (create-only), else the earlier one."""
    kv = await res.bus.idempotency()
    entry_key = _entry_key(owner, key)
    try:
        await kv.create(entry_key, job_id.encode())
        return job_id, False
    except KeyWrongLastSequenceError:
        entry = await kv.get(entry_key)
        if entry.value is None:  # pragma: no cover - create refuses only an existing value
            raise
        return entry.value.decode(), True


async def unclaim(res: Resources, owner: str, key: str) -> None:
    """Free ``owner``'s key again (claimed for a job that was refused before it was published)."""
    kv = await res.bus.idempotency()
    await kv.delete(_entry_key(owner, key))


async def _array_stored(res: Resources, array_id: str) -> bool:
    async with res.session() as session:
        return await session.get(ArrayRow, array_id) is not None


def as_submitted(command: v1.SubmitJob) -> v1.Job:
    fields = msgspec.structs.asdict(command.spec)
    fields.update(id=command.job_id, owner=command.owner, created_at=command.submitted_at)
    fields["state"] = v1.JobState.QUEUED
    return v1.from_checked(v1.Job, fields)  # the spec's checks ran when it was parsed


def _is_transition(event: v1.Event) -> bool:
    return isinstance(event, v1.JobTransitioned)


async def submit(
    res: Resources,
    spec: v1.JobSpec,
    *,
    owner: str,
    idempotency_key: str | None,
    audit: Callable[[str], v1.AuditRecord] | None = None,
) -> Submitted:
    """Publish the submit and wait briefly for the scheduler. ``audit`` makes the request's audit record
    for the command to carry (not for a replay: JetStream drops a replay's publish as a duplicate)."""
    job_id, replayed = v1.new_job_id(), False
    refused: TooManyRequests | None = None
    try:  # admitted before the key is claimed: a claimed key always stands for an admitted job
        await admit(res, owner, job_id, spec)
    except TooManyRequests as e:
        # a replay was admitted the first time: a full quota refuses only a key never claimed (read
        # here, so a first request does not pay for that read)
        if idempotency_key is None or await claimed_id(res, owner, idempotency_key) is None:
            raise
        refused = e
    if idempotency_key is not None:
        new_id = job_id
        job_id, replayed = await claim_id(res, owner, idempotency_key, job_id)
        if not replayed and refused is not None:  # the earlier claim expired meanwhile
            await unclaim(res, owner, idempotency_key)
            raise refused
        if replayed and refused is None:  # a replay, or lost a race with the same key: the first counts
            res.admissions.release(owner, new_id)
        if replayed and (stored := await load_job(res, job_id)) is not None:
            return Submitted(stored, accepted=True, replayed=True)
        if replayed and spec.array is not None and await _array_stored(res, job_id):
            # an array is no job: the replay answers with it as submitted, which is all it shows
            command = v1.SubmitJob(job_id=job_id, spec=spec, owner=owner)
            return Submitted(as_submitted(command), accepted=True, replayed=True)
    # A replay whose job is not stored yet publishes again under the same msg id: JetStream drops the
    # duplicate, and a first request that died between claiming the key and publishing is completed.
    record = audit(job_id) if audit is not None and not replayed else None
    command = v1.SubmitJob(
        job_id=job_id, spec=spec, owner=owner, submitted_at=datetime.now(UTC), audit=record
    )
    with res.waiters.watch(job_id, _is_transition) as accepted:
        try:
            await res.bus.publish(sj.cmd_subject("submit"), command, msg_id=job_id)
        except Exception:
            res.admissions.release(owner, job_id)  # nothing half-submitted: the place is free again
            raise
        event = await wait(accepted, res.settings.accept_timeout)
    if isinstance(event, v1.JobTransitioned):
        # The acceptance event says all a new job has to say; no database round trip on the hot path.
        return Submitted(as_accepted(command, event), accepted=True, replayed=replayed)
    return Submitted(as_submitted(command), accepted=False, replayed=replayed)


def as_accepted(command: v1.SubmitJob, event: v1.JobTransitioned) -> v1.Job:
    """The job as the scheduler stored it, rebuilt from its ``queued`` event."""
    job = as_submitted(command)
    job.state = event.state
    job.node = event.node
    job.queue_position = event.queue_position
    job.reason = event.reason
    job.transitions = [v1.TransitionRecord(state=event.state, at=event.at, reason=event.reason)]
    return job
