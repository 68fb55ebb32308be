"""``after`` checked at submit: every job named must be one of the submitter's own. An unknown id and
another owner's job get the same answer, so ids leak nothing about other owners' jobs."""

from __future__ import annotations

from collections.abc import Iterable

from jobwire.contracts import v1
from jobwire.store import workflows as store

from ..problems import Problem
from ..resources import Resources


class UnknownDependency(Problem):
    status, slug, title = 422, "unknown-dependency", "A job named in `after` does not exist"


def refs(specs: Iterable[v1.JobSpec], prefix: str = "$") -> list[tuple[str, str]]:
    """(JSON path, job id) of every dependency of ``specs`` (``prefix`` is one spec's path, or the
    list's, each spec then at ``[i]``)."""
    return [(f"{prefix}.after[{k}].job", d.job) for spec in specs for k, d in enumerate(spec.after)]


async def check(res: Resources, owner: str, named: list[tuple[str, str]]) -> None:
    """422 naming every id in ``named`` ((path, id) pairs) that is no job of ``owner``; one query
    per 500 ids."""
    if not named:
        return
    async with res.session() as session:
        found = await store.owned_job_ids(session, (j for _, j in named), owner)
    bad = [(path, job) for path, job in named if job not in found]
    if bad:
        jobs = sorted({job for _, job in bad})
        raise UnknownDependency(
            f"`after` names {', '.join(repr(j) for j in jobs)}: there is no such job of yours",
            extra={"path": bad[0][0], "jobs": jobs},
        )


async def check_specs(res: Resources, owner: str, specs: list[v1.JobSpec]) -> None:
    """``check`` for a batch of specs, each at ``$.jobs[i]``."""
    await check(res, owner, [p for i, s in enumerate(specs) for p in refs([s], f"$.jobs[{i}]")])
