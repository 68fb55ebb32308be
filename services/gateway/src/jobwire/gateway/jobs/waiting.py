"""``POST /v1/jobs?wait=SECONDS``: hold the answer until the job has finished, or the time is up.

The waiter is registered before the job is read back, so an end that happens in between is not missed.
"""

from __future__ import annotations

import time

from jobwire.contracts import v1

from ..resources import Resources
from ..waiters import wait
from .lookup import is_done, load_job

#: the longest ``wait`` accepted (proxies and clients time out long before)
MAX_WAIT = 3600.0


def _finishing(event: v1.Event) -> bool:
    return isinstance(event, v1.JobTransitioned) and (
        event.state in v1.TERMINAL or event.state is v1.JobState.LOST
    )


async def until_done(res: Resources, job: v1.Job, seconds: float) -> tuple[v1.Job, bool]:
    """The job when it finished within ``seconds`` (True), else as it stands (False)."""
    deadline = time.monotonic() + seconds
    while True:
        with res.waiters.watch(job.id, _finishing) as finished:
            job = await load_job(res, job.id) or job
            if is_done(job):
                return job, True
            left = deadline - time.monotonic()
            if left <= 0:
                return job, False
            # a `lost` job with attempts left is queued again: wait for its next end
            await wait(finished, left)


def links(job_id: str) -> str:
    base = f"/v1/jobs/{job_id}"
    return f'<{base}/logs>; rel="logs", <{base}/artifacts>; rel="artifacts", <{base}/events>; rel="events"'
