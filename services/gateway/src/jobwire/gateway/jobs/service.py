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


class JobFinished(Conflict):
    slug, title = "job-finished", "Job already finished"


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
) -> JobPage:
    async with res.session() as session:
        try:
            jobs, next_cursor = await queries.list_jobs(
                session,
                states=states,
                node=node,
                name=name,
                labels=labels,
                owner=owner,
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
