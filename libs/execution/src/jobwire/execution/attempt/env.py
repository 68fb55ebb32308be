"""The environment every job gets, on every backend: written here once.

A new ``JOBWIRE_*`` variable goes in :func:`jobwire_env`; a rule about which variables a job may see
at all (issue 12's allowlist) goes in :func:`job_environment`, the one place each backend's launch
environment is composed.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobwire.contracts.v1 import RunJob

from .layout import AttemptDir


def jobwire_env(run: RunJob, seen: AttemptDir) -> dict[str, str]:
    """The ``JOBWIRE_*`` variables, with paths as the job sees them (``seen``: its attempt directory
    on the node, or where a container mounts it)."""
    return {
        "JOBWIRE_JOB_ID": run.job_id,
        "JOBWIRE_ATTEMPT": str(run.attempt),
        "JOBWIRE_JOB_DIR": seen.path,
        "JOBWIRE_PROGRESS_FILE": seen.progress,
        "JOBWIRE_OUTPUT_DIR": seen.outputs,
    }


def job_environment(
    run: RunJob, seen: AttemptDir, backend: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What the job runs with: its spec's ``env``, then what its backend adds (its GPUs), then ours,
    which nothing overrides."""
    return {**run.spec.env, **(backend or {}), **jobwire_env(run, seen)}
