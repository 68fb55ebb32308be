"""The environment every job gets, on every backend: written here once.

A job sees only its spec's ``env``, what its backend adds (its GPUs), the ``JOBWIRE_*`` variables
meant for it, and an allowlist of the launching environment (:data:`DEFAULT_ENV_ALLOW`, configured
by ``JOBWIRE_EXECUTOR_ENV_ALLOW``) — never the executor's own environment, which holds its secrets
(``JOBWIRE_NATS_PASSWORD``, ``PGPASSWORD``, ``OTEL_EXPORTER_OTLP_HEADERS``; issue 12). A new
``JOBWIRE_*`` variable goes in :func:`jobwire_env`; the allowlist is applied by :func:`inherited`
where the job starts on this machine and by :func:`inherit_words` in shell text run on another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from jobwire.contracts.v1 import Gang, RunJob

from .layout import AttemptDir

#: What a job may take from the environment it is launched from (``NAME`` or ``PREFIX*``).
DEFAULT_ENV_ALLOW: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_*", "TZ", "USER", "LOGNAME", "TMPDIR")

#: The locale categories (POSIX and glibc): what ``LC_*`` means where the environment cannot be
#: listed before the job starts (a remote login shell).
LOCALE_NAMES: tuple[str, ...] = (
    "LC_ALL",
    "LC_CTYPE",
    "LC_COLLATE",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_ADDRESS",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_NAME",
    "LC_PAPER",
    "LC_TELEPHONE",
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")


def check_allow(patterns: Iterable[str]) -> tuple[str, ...]:
    """``patterns`` checked: each a variable name, or a name prefix ending in ``*``."""
    out = []
    for p in patterns:
        name = p[:-1] if p.endswith("*") else p
        if not _NAME.match(name):
            raise ValueError(f"{p!r} is not an environment variable name or NAME* prefix")
        out.append(p)
    return tuple(out)


def inherited(environ: Mapping[str, str], patterns: Sequence[str]) -> dict[str, str]:
    """The variables of ``environ`` a job may keep: those ``patterns`` allow, nothing else.

    One set lookup and one ``startswith`` of a tuple per variable (done for every launch: a loop over
    the patterns for each variable of the executor's environment showed in its profile)."""
    exact = {p for p in patterns if not p.endswith("*")}
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
    return {k: v for k, v in environ.items() if k in exact or (prefixes and k.startswith(prefixes))}


def inherit_words(patterns: Sequence[str]) -> list[str]:
    """Shell words that expand to ``NAME=value`` for each allowed variable the shell has set, and to
    nothing for one it has not (``${PATH+"PATH=$PATH"}``): for ``env -i`` run by a remote shell.

    Prefix patterns cannot be listed there; ``LC_*`` stands for :data:`LOCALE_NAMES`, other
    prefixes keep nothing remotely.
    """
    names: list[str] = []
    for p in check_allow(patterns):
        if p == "LC_*":
            names += LOCALE_NAMES
        elif not p.endswith("*"):
            names.append(p)
    return [f'${{{n}+"{n}=${n}"}}' for n in dict.fromkeys(names)]


def jobwire_env(run: RunJob, seen: AttemptDir) -> dict[str, str]:
    """The ``JOBWIRE_*`` variables, with paths as the job sees them (``seen``: its attempt directory
    on the node, or where a container mounts it)."""
    env = {
        "JOBWIRE_JOB_ID": run.job_id,
        "JOBWIRE_ATTEMPT": str(run.attempt),
        "JOBWIRE_JOB_DIR": seen.path,
        "JOBWIRE_PROGRESS_FILE": seen.progress,
        "JOBWIRE_OUTPUT_DIR": seen.outputs,
    }
    if run.array_id is not None:  # a task of an array (Slurm's SLURM_ARRAY_JOB_ID, _TASK_ID, _TASK_COUNT)
        env["JOBWIRE_ARRAY_ID"] = run.array_id
        env["JOBWIRE_ARRAY_INDEX"] = str(run.array_index)
        env["JOBWIRE_ARRAY_COUNT"] = str(run.array_count)
    if run.gang is not None:
        env.update(gang_env(run.gang))
    return env


def gang_env(gang: Gang) -> dict[str, str]:
    """One rank's view of its gang: ``JOBWIRE_RANK`` and the rest, and the same without the prefix
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) for torch.distributed's env://."""
    base = {
        "RANK": str(gang.rank),
        "WORLD_SIZE": str(gang.world_size),
        "MASTER_ADDR": gang.master_addr,
        "MASTER_PORT": str(gang.master_port),
    }
    return {
        **base,
        **{f"JOBWIRE_{k}": v for k, v in base.items()},
        "JOBWIRE_HOSTS": ",".join(gang.hosts),
    }


def job_environment(
    run: RunJob, seen: AttemptDir, backend: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What the job's own variables are: its spec's ``env``, then what its backend adds (its GPUs),
    then ours, which nothing overrides. The launcher starts the job with these and the allowlisted
    part of its environment only (``Transport.spawn_detached(..., inherit=...)``)."""
    return {**run.spec.env, **(backend or {}), **jobwire_env(run, seen)}
