"""Reading one job from the database, shared by every ``/v1/jobs/{id}/...`` resource."""

from __future__ import annotations

from jobwire.contracts import v1
from jobwire.store import queries

from ..problems import JobNotFound
from ..resources import Resources


async def load_job(res: Resources, job_id: str, *, owner: str | None = None) -> v1.Job | None:
    """The job; with ``owner``, only when it is theirs (someone else's job does not exist for them)."""
    if not v1.is_job_id(job_id):
        return None  # not an id we hand out: cannot exist (and must not reach a subject)
    return await res.read(queries.get_job_sync, job_id, owner=owner)


def require_job_id(job_id: str) -> str:
    """The id, or the 404 a lookup would give: for a wait that subscribes to the job's own subject
    before it reads the job, a text that is no id of ours must never reach a subject."""
    if not v1.is_job_id(job_id):
        raise JobNotFound(f"there is no job {job_id!r}")
    return job_id


async def require_job(res: Resources, job_id: str, *, owner: str | None = None) -> v1.Job:
    """The job, or a 404 problem (also for another owner's job: ids leak nothing)."""
    job = await load_job(res, job_id, owner=owner)
    if job is None:
        raise JobNotFound(f"there is no job {job_id!r}")
    return job


def is_done(job: v1.Job) -> bool:
    """Nothing more will happen to the job (``lost`` counts once it has no attempt left)."""
    return v1.is_finished(job.state, attempts_left=job.attempt < job.max_attempts)
