"""Where one attempt's files live on the shared storage, and where the container sees them.

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

#: where the attempt directory appears inside the container
IN_CONTAINER = DOCKER_JOB_MOUNT
LABEL_JOB = "jobwire.job_id"
LABEL_ATTEMPT = "jobwire.attempt"
LABEL_NODE = "jobwire.node"
LABEL_GPUS = "jobwire.gpus"
RUN_JSON = "run.json"
STATE = "state.json"
REPORTED = "reported"
PROGRESS = "progress.json"


def container_name(job_id: str, attempt: int) -> str:
    """Deterministic, so a second create of the same attempt fails instead of running it twice."""
    return f"jobwire-{job_id}-{attempt}"


@dataclass(frozen=True)
class JobDir:
    path: str

    @classmethod
    def of(cls, shared_root: str, job_id: str, attempt: int) -> JobDir:
        return cls(posixpath.join(shared_root, "jobs", job_id, str(attempt)))

    @property
    def logs(self) -> str:
        return posixpath.join(self.path, "logs")

    def log(self, stream: str) -> str:
        return posixpath.join(self.logs, stream)

    @property
    def private(self) -> str:
        return posixpath.join(self.path, ".executor")

    def own(self, name: str) -> str:
        """A file of the executor's own (run.json, state.json, reported, ``<stream>.idx``)."""
        return posixpath.join(self.private, name)

    @property
    def outputs(self) -> str:
        return posixpath.join(self.path, "outputs")

    @property
    def work(self) -> str:
        return posixpath.join(self.path, "work")

    @property
    def progress(self) -> str:
        return posixpath.join(self.path, PROGRESS)


def inside(*parts: str) -> str:
    """A path below ``/jobwire`` as the container sees it."""
    return posixpath.join(IN_CONTAINER, *parts)
