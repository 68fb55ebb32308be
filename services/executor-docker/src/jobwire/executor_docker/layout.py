"""Where the container sees its attempt, and the labels that find the container again.

The attempt's files are laid out as every backend's (:mod:`jobwire.execution.attempt.layout`):
``<shared>/jobs/<job_id>/<attempt>/`` is the job's (``progress.json``, ``outputs/``, ``work/``, its
script) and the only directory mounted, at ``/jobwire``; the executor's files (run.json, state.json,
reported, the logs copied from the engine and their indexes) are in
``<shared>/.executor/jobs/<job_id>/<attempt>/``, never mounted, so a job can neither read nor rewrite
them. Attempts get their own directory so a retry never sees, or uploads, what an earlier one left.
"""

from __future__ import annotations

import os
import posixpath
import stat

from jobwire.contracts.v1.spec import DOCKER_JOB_MOUNT
from jobwire.execution.attempt import AttemptDir, attempt_name
from jobwire.execution.attempt.layout import OWN_TREE, PROGRESS, REPORTED, RUN_JSON, STATE

__all__ = ["OWN_TREE", "PROGRESS", "REPORTED", "RUN_JSON", "STATE"]

#: where the attempt directory appears inside the container
IN_CONTAINER = DOCKER_JOB_MOUNT
LABEL_JOB = "jobwire.job_id"
LABEL_ATTEMPT = "jobwire.attempt"
LABEL_NODE = "jobwire.node"
LABEL_GPUS = "jobwire.gpus"
LABEL_RANK = "jobwire.rank"


def container_name(job_id: str, attempt: int, rank: int = 0) -> str:
    """Deterministic, so a second create of the same attempt fails instead of running it twice; a
    gang's rank r > 0 adds ``-rank<r>`` (its ranks may run on nodes of one engine)."""
    return f"jobwire-{job_id}-{attempt_name(attempt, rank)}"


def rank_label(labels: dict[str, str]) -> int:
    """The gang rank a container's labels name (0 for a job on one node, or a container from before
    ranks were labelled)."""
    rank = labels.get(LABEL_RANK, "0")
    return int(rank) if rank.isdigit() else 0


def inside(*parts: str) -> str:
    """A path below ``/jobwire`` as the container sees it."""
    return posixpath.join(IN_CONTAINER, *parts)


#: Where executors before the one attempt layout (issue 16) kept an attempt's own files and its logs:
#: inside the job's directory, mounted read-only over it.
SPLIT_OWN, SPLIT_LOGS = ".executor", "logs"


def move_split_attempt(d: AttemptDir) -> bool:
    """Move an attempt an older executor laid out inside the job's directory (``.executor/``,
    ``logs/``) to where its files are kept now, so its container, still running after the upgrade, is
    followed to its end instead of removed as one without a directory. True when it moved one.

    Only directories this process owns, not links, are taken (under run-as the job's account owns the
    directory around them and could have put its own there), and only regular files are moved.
    """
    old_own = os.path.join(d.path, SPLIT_OWN)
    if not _ours(old_own) or not os.path.isfile(os.path.join(old_own, RUN_JSON)):
        return False
    os.makedirs(d.private, mode=0o700, exist_ok=True)
    for src in (old_own, os.path.join(d.path, SPLIT_LOGS)):
        if not _ours(src):
            continue
        for name in os.listdir(src):
            path = os.path.join(src, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.replace(path, os.path.join(d.private, name))
    return True


def _ours(path: str) -> bool:
    """A directory of this process's user, not a link to one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
