"""Workflows: several jobs submitted together, referring to each other by name in ``after``.

A workflow is checked here (names unique, every name known, no cycle) so the gateway refuses it with
one 422 that names every problem and the CLI can say the same before sending it; the scheduler then
stores it in one transaction, dependencies first.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from .deps import When
from .ids import is_job_id
from .spec import JobSpec, Name
from .states import JobState

#: the most jobs one workflow holds
MAX_WORKFLOW_JOBS = 1000


class WorkflowSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``{"name": ..., "jobs": [JobSpec with a unique name, ...]}``; ``after[].job`` is another job's
    name in the workflow, or the id of an existing job of the same owner."""

    name: Name | None = None
    jobs: Annotated[list[JobSpec], Meta(min_length=1, max_length=MAX_WORKFLOW_JOBS)]


class WorkflowInvalid(ValueError):
    """Every reason the workflow cannot be stored, each with the JSON path it is about."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(text for _, text in problems))
        self.problems = problems


def plan(workflow: WorkflowSpec) -> tuple[list[int], set[str]]:
    """The jobs' indexes in an order where each comes after the jobs it names (dependencies first),
    and the ids of jobs outside the workflow that it names (to be checked by the caller).

    Raises WorkflowInvalid naming every job without a name, every name given twice, every name in
    ``after`` that is neither a job of the workflow nor a job id, and the jobs of each cycle.
    """
    problems: list[tuple[str, str]] = []
    index: dict[str, int] = {}
    for i, job in enumerate(workflow.jobs):
        if job.name is None:
            problems.append((f"$.jobs[{i}].name", f"job {i} has no name: every job of a workflow needs one"))
        elif job.name in index:
            problems.append((f"$.jobs[{i}].name", f"job name {job.name!r} is given twice"))
        else:
            index[job.name] = i
    outside: set[str] = set()
    for i, job in enumerate(workflow.jobs):
        for k, dep in enumerate(job.after):
            if dep.job in index:
                continue
            if is_job_id(dep.job):
                outside.add(dep.job)
            else:
                problems.append(
                    (
                        f"$.jobs[{i}].after[{k}].job",
                        f"job {job.name or i!r} is after {dep.job!r}, which is no job of this workflow",
                    )
                )
    if problems:
        raise WorkflowInvalid(problems)
    order, cycle = _topological(workflow, index)
    if cycle:
        names = " -> ".join(repr(workflow.jobs[i].name) for i in cycle)
        raise WorkflowInvalid([("$.jobs", f"the workflow has a cycle: {names}")])
    return order, outside


def _topological(workflow: WorkflowSpec, index: dict[str, int]) -> tuple[list[int], list[int]]:
    """Kahn's order over the named edges; when jobs are left over, one cycle among them."""
    parents = [[index[d.job] for d in job.after if d.job in index] for job in workflow.jobs]
    children: list[list[int]] = [[] for _ in workflow.jobs]
    for child, ps in enumerate(parents):
        for p in ps:
            children[p].append(child)
    missing = [len(ps) for ps in parents]
    ready = deque(i for i, n in enumerate(missing) if n == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for c in children[i]:
            missing[c] -= 1
            if missing[c] == 0:
                ready.append(c)
    if len(order) == len(workflow.jobs):
        return order, []
    return order, _a_cycle(parents, {i for i, n in enumerate(missing) if n > 0})


def _a_cycle(parents: list[list[int]], left: set[int]) -> list[int]:
    """Walk parents within the jobs Kahn could not order until a job repeats: that loop is a cycle
    (each of them has a parent among them), shown in dependency order and closed."""
    seen: dict[int, int] = {}
    path: list[int] = []
    node = min(left)
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in parents[node] if p in left)
    loop = path[seen[node] :]
    loop.reverse()
    return [*loop, loop[0]]


class WorkflowEdge(msgspec.Struct, kw_only=True):
    """``to`` runs after ``from`` ended as ``when`` says (names within the workflow, ids outside it)."""

    from_: str = msgspec.field(name="from")
    to: str
    when: When


class WorkflowJob(msgspec.Struct, kw_only=True):
    name: str
    id: str
    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class WorkflowView(msgspec.Struct, kw_only=True):
    """A workflow as ``GET /v1/workflows/{id}`` shows it: its jobs in dependency order, their states,
    the edges between them, and how many jobs are in each state."""

    id: str
    owner: str
    name: str | None = None
    created_at: datetime | None = None
    counts: dict[str, int] = {}
    jobs: list[WorkflowJob] = []
    edges: list[WorkflowEdge] = []


class WorkflowSubmitted(msgspec.Struct, kw_only=True):
    """The answer to ``POST /v1/workflows``: the workflow's id and each job's id by name."""

    id: str
    jobs: dict[str, str]
    #: the scheduler stored it (201); otherwise it is durably queued, whole (202)
    accepted: bool


class WorkflowSummary(msgspec.Struct, kw_only=True):
    """One workflow in ``GET /v1/workflows``: who, when, how many jobs (``GET /v1/workflows/{id}`` for
    their states)."""

    id: str
    owner: str
    name: str | None = None
    created_at: datetime | None = None
    jobs: int = 0


class WorkflowPage(msgspec.Struct, kw_only=True):
    items: list[WorkflowSummary]
    #: pass as ``cursor`` for the next page; absent on the last
    next_cursor: str | None = None
