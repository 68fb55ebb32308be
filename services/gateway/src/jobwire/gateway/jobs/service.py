"""Reading, listing, cancelling and deleting jobs.

Reads go to the database. Cancel and delete are commands to the scheduler: we publish, then wait briefly
for the event that shows the outcome, resolved by the app's one event subscription.
"""

from __future__ import annotations

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store import queries

from ..problems import Conflict, InvalidParameter
from ..resources import Resources
from ..waiters import wait
from .lookup import is_done, load_job, require_job
from .schemas import JobPage
from .submit import admit


class JobFinished(Conflict):
    slug, title = "job-finished", "Job already finished"


class CannotRequeue(Conflict):
    slug, title = "cannot-requeue", "The job cannot be requeued now"


async def list_jobs(
    res: Resources,
    *,
    states: list[str],
    node: str | None,
    name: str | None,
    labels: dict[str, str],
    owner: str | None,
    limit: int,
    cursor: str | None,
    array: str | None = None,
    workflow: str | None = None,
) -> JobPage:
    try:
        jobs, next_cursor = await res.read(
            queries.list_jobs_sync,
            states=states,
            node=node,
            name=name,
            labels=labels,
            owner=owner,
            array=array,
            workflow=workflow,
            limit=limit,
            cursor=cursor,
        )
    except queries.InvalidCursor as e:
        raise InvalidParameter(f"query parameter `cursor`: {e}") from None
    return JobPage(items=jobs, next_cursor=next_cursor)


def _finishing(event: v1.Event) -> bool:
    return isinstance(event, v1.JobTransitioned) and (
        event.state in v1.TERMINAL or event.state is v1.JobState.LOST
    )


async def cancel(
    res: Resources, job_id: str, *, owner: str, visible: str | None = None
) -> tuple[v1.Job, bool]:
    """The job after the cancel, and whether it is finished (200) or the cancel still pending (202).

    ``visible`` limits it to that owner's jobs (None: an admin, any job).
    """
    with res.waiters.watch(job_id, _finishing) as finished:
        job = await require_job(res, job_id, owner=visible)
        if v1.rule_for(v1.Verb.CANCEL, job.state) is None:
            raise JobFinished(
                f"job {job_id} already finished ({job.state.value}); only "
                f"{v1.describe_states(v1.Verb.CANCEL)} jobs can be cancelled"
            )
        command = v1.CancelJob(job_id=job_id, requested_by=owner)
        await res.bus.publish(
            sj.cmd_subject(v1.Verb.CANCEL), command, msg_id=sj.command_msg_id(job_id, v1.Verb.CANCEL)
        )
        await wait(finished, res.settings.wait_timeout)
    job = await load_job(res, job_id) or job
    return job, is_done(job)


async def requeue(
    res: Resources, job_id: str, *, owner: str, visible: str | None = None
) -> tuple[v1.Job, bool]:
    """The job after the requeue, and whether it is queued again yet (200) or still stopping (202).

    A running job is stopped first; a finished one is queued at once. Either runs as a new attempt.
    """

    def queued(event: v1.Event) -> bool:
        return isinstance(event, v1.JobTransitioned) and event.state is v1.JobState.QUEUED

    with res.waiters.watch(job_id, queued) as seen:
        job = await require_job(res, job_id, owner=visible)
        # a job held in jobwire's own queue has no node: it has not run, so there is nothing to redo
        where = v1.where_of(job.state, dispatched=job.node is not None)
        if v1.rule_for(v1.Verb.REQUEUE, job.state, where) is None:
            raise CannotRequeue(
                f"job {job_id} is {job.state.value}; only running and finished jobs can be requeued "
                f"({v1.describe_states(v1.Verb.REQUEUE)})"
            )
        if job.state not in v1.ACTIVE:
            # a finished job becomes active again: it takes a place in its owner's quotas as a submit
            # does (429, nothing published, when that would pass max_active or max_gpus)
            await admit(res, job.owner, job_id, job)
        command = v1.RequeueJob(job_id=job_id, requested_by=owner)
        msg_id = sj.command_msg_id(job_id, v1.Verb.REQUEUE, len(job.transitions))
        await res.bus.publish(sj.cmd_subject(v1.Verb.REQUEUE), command, msg_id=msg_id)
        if await wait(seen, res.settings.wait_timeout) is not None:
            job = await load_job(res, job_id) or job
            return job, True
    return await load_job(res, job_id) or job, False


def _deleted(event: v1.Event) -> bool:
    return isinstance(event, v1.JobDeleted)


async def delete(res: Resources, job_id: str, *, owner: str, visible: str | None = None) -> v1.Job | None:
    """None once the job is gone (204), else the job still waiting to be deleted (202)."""
    with res.waiters.watch(job_id, _deleted) as deleted:
        await require_job(res, job_id, owner=visible)
        command = v1.DeleteJob(job_id=job_id, requested_by=owner)
        await res.bus.publish(
            sj.cmd_subject(v1.Verb.DELETE), command, msg_id=sj.command_msg_id(job_id, v1.Verb.DELETE)
        )
        if await wait(deleted, res.settings.wait_timeout) is not None:
            return None
    return await load_job(res, job_id)
