"""Hold and release: commands to the scheduler, refused here (409) when the job's state or its node
cannot take them, so the caller learns why at once instead of seeing nothing happen."""

from __future__ import annotations

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.models import NodeRow

from ..problems import Conflict
from ..resources import Resources
from ..waiters import wait
from .lookup import load_job, require_job, require_job_id

S = v1.JobState


class CannotHold(Conflict):
    slug, title = "cannot-hold", "The job cannot be held now"


class NotHeld(Conflict):
    slug, title = "not-held", "The job is not held"


async def _node_has(res: Resources, node: str, flag: str) -> bool:
    """Whether the node's published capacity has ``flag`` set (a rule's ``needs``)."""
    async with res.session() as session:
        row = await session.get(NodeRow, node)
    return row is not None and bool(getattr(v1.decode(row.capacity, v1.NodeCapacity), flag, False))


async def hold(res: Resources, job_id: str, *, visible: str | None) -> tuple[v1.Job, bool]:
    """The job after the hold, and whether it shows ``held`` yet (200) or the hold is pending (202).

    A queued job is held in jobwire's queue; a launched job whose batch system still queues it is
    held there (its node must support it); a running or finished job cannot be held.
    """

    def held(event: v1.Event) -> bool:
        return isinstance(event, v1.JobTransitioned) and event.state in (S.HELD, S.RUNNING, *v1.TERMINAL)

    async with res.waiters.watch_every_event(require_job_id(job_id), held) as seen:
        job = await require_job(res, job_id, owner=visible)
        rule = v1.rule_for(v1.Verb.HOLD, job.state, v1.where_of(job.state, dispatched=None))
        if rule is None:
            raise CannotHold(
                f"job {job_id} is {job.state.value}; only queued jobs, and jobs their batch system "
                "still queues, can be held"
            )
        if rule.effect is v1.Effect.ALREADY:
            return job, True
        if rule.needs and not (job.node and await _node_has(res, job.node, rule.needs)):
            raise CannotHold(
                f"job {job_id} was already started on node {job.node}, whose backend cannot hold a "
                "started run; cancel it instead"
            )
        msg_id = sj.command_msg_id(job_id, v1.Verb.HOLD, len(job.transitions))
        await res.bus.publish(sj.cmd_subject(v1.Verb.HOLD), v1.HoldJob(job_id=job_id), msg_id=msg_id)
        await wait(seen, res.settings.wait_timeout)
    job = await load_job(res, job_id) or job
    return job, job.state is S.HELD


async def release(res: Resources, job_id: str, *, visible: str | None) -> tuple[v1.Job, bool]:
    """The job after the release, and whether it left ``held`` yet (200) or is still held (202)."""

    def released(event: v1.Event) -> bool:
        return isinstance(event, v1.JobTransitioned) and event.previous is S.HELD

    async with res.waiters.watch_every_event(require_job_id(job_id), released) as seen:
        job = await require_job(res, job_id, owner=visible)
        if v1.rule_for(v1.Verb.RELEASE, job.state) is None:
            raise NotHeld(
                f"job {job_id} is {job.state.value}, not held; only "
                f"{v1.describe_states(v1.Verb.RELEASE)} jobs can be released"
            )
        msg_id = sj.command_msg_id(job_id, v1.Verb.RELEASE, len(job.transitions))
        await res.bus.publish(sj.cmd_subject(v1.Verb.RELEASE), v1.ReleaseJob(job_id=job_id), msg_id=msg_id)
        await wait(seen, res.settings.wait_timeout)
    job = await load_job(res, job_id) or job
    return job, job.state is not S.HELD
