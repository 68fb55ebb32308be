"""Where one attempt's files live on the shared storage (:data:`jobwire.execution.attempt.SPLIT`),
and where the container sees them.

``<shared>/jobs/<job_id>/<attempt>/`` is mounted at ``/jobwire`` and holds ``progress.json``,
``outputs/``, ``work/`` and ``logs/`` (stdout, stderr, copied from the engine). ``logs/`` and
``.executor/`` (run.json, state.json, reported, log indexes) are mounted over it read-only, so a job
can read its logs but never rewrite them or the executor's bookkeeping. Attempts get their own
directory so a retry never sees, or uploads, what an earlier attempt left.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from jobwire.contracts.v1.spec import DOCKER_JOB_MOUNT
from jobwire.execution.attempt import SPLIT, AttemptDir, Layout
from jobwire.execution.attempt.layout import PROGRESS, REPORTED, RUN_JSON, STATE

__all__ = ["PROGRESS", "REPORTED", "RUN_JSON", "STATE", "AttemptDir", "JobDir"]

#: where the attempt directory appears inside the container
IN_CONTAINER = DOCKER_JOB_MOUNT
LABEL_JOB = "jobwire.job_id"
LABEL_ATTEMPT = "jobwire.attempt"
LABEL_NODE = "jobwire.node"
LABEL_GPUS = "jobwire.gpus"


def container_name(job_id: str, attempt: int) -> str:
    """Deterministic, so a second create of the same attempt fails instead of running it twice."""
    return f"jobwire-{job_id}-{attempt}"


@dataclass(frozen=True)
class JobDir(AttemptDir):
    """An attempt directory in the container layout (``logs/`` and ``.executor/`` apart)."""

    layout: Layout = SPLIT

    @classmethod
    def of(cls, root: str, job_id: str, attempt: int, layout: Layout = SPLIT) -> JobDir:
        return cls(posixpath.join(root, "jobs", job_id, str(attempt)), layout)


def inside(*parts: str) -> str:
    """A path below ``/jobwire`` as the container sees it."""
    return posixpath.join(IN_CONTAINER, *parts)
