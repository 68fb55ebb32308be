"""Refuse at submit a job no registered node could ever run, as Slurm's ``sbatch`` does.

The rules are ``contracts.v1.feasibility``'s, the scheduler's own; the nodes come from the gateway's
in-memory snapshot, so the check costs no query and writes nothing.
"""

from __future__ import annotations

from jobwire.contracts import v1

from ..problems import Problem
from ..resources import Resources


class NoNodeFits(Problem):
    status, slug, title = 422, "no-node-fits", "No registered node could ever run this job"


async def check(res: Resources, spec: v1.JobSpec, owner: str) -> None:
    """422 naming the resource or hint no node satisfies for ``owner``, and the most any node offers."""
    why = await res.nodes.refusal(spec, owner)
    if why is not None:
        raise NoNodeFits(f"{why.detail} (see GET /v1/nodes)", extra={"path": why.path})
