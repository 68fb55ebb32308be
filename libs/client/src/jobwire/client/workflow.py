"""``jobwire workflow submit FILE.yaml`` and ``jobwire workflow show ID``: reading a workflow file,
and drawing a workflow's DAG in the terminal, one level per row of dependencies, with each job's state.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobwire.contracts import v1
from jobwire.contracts.v1 import workflows

from . import render, specs


def read_workflow(path: str) -> v1.WorkflowSpec:
    """The workflow in a YAML or JSON file, checked as the gateway will (strict fields, names, cycles),
    so a typo or a cycle is reported before anything is sent."""
    raw = specs.load_spec_file(Path(path))
    try:
        spec = v1.convert_strict(raw, v1.WorkflowSpec)
    except msgspec.MsgspecError as e:
        raise specs.UsageError(f"{path}: not a workflow: {e}") from None
    try:
        workflows.plan(spec)
    except v1.WorkflowInvalid as e:
        lines = "\n".join(f"  {where}: {text}" for where, text in e.problems)
        raise specs.UsageError(f"{path}: the workflow cannot run as written:\n{lines}") from None
    return spec


def levels(view: v1.WorkflowView) -> dict[str, int]:
    """Each job's row in the drawing: the longest chain of dependencies within the workflow before it
    (the jobs come dependencies first, so one pass settles them)."""
    parents: dict[str, list[str]] = {}
    for edge in view.edges:
        parents.setdefault(edge.to, []).append(edge.from_)
    level: dict[str, int] = {}
    for job in view.jobs:
        level[job.name] = 1 + max((level[p] for p in parents.get(job.name, ()) if p in level), default=-1)
    return level


def _named(text: str, names: dict[str, str]) -> str:
    """Job ids in a reason replaced by their names in the workflow (``waiting for b to succeed``)."""
    for job_id, name in names.items():
        text = text.replace(job_id, name)
    return text


def draw(view: v1.WorkflowView) -> RenderableType:
    """The DAG: a heading with counts per state, then one block per level, each job with its state,
    id, what it comes after (with how, when not ``succeeded``) and its reason."""
    title = Text(f"workflow {view.id}", style="bold")
    if view.name:
        title.append(f" {view.name}")
    title.append(f" · {len(view.jobs)} jobs: ")
    for i, (state, n) in enumerate(sorted(view.counts.items())):
        title.append(", " if i else "")
        title.append_text(render.state_text(state)).append(f" {n}")
    names = {job.id: job.name for job in view.jobs}
    after: dict[str, list[str]] = {}
    for edge in view.edges:
        shown = names.get(edge.from_, edge.from_)
        after.setdefault(edge.to, []).append(shown if edge.when == "succeeded" else f"{shown} ({edge.when})")
    level = levels(view)
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("level", "job", "state", "after", "id", "reason"):
        table.add_column(column, overflow="fold")
    last = -1
    for job in sorted(view.jobs, key=lambda j: level[j.name]):
        row_level = level[job.name]
        mark = f"{row_level}" if row_level != last else ""
        if row_level != last and last >= 0:
            table.add_row("│", "", "", "", "", "")
        last = row_level
        arrow = "◀ " + ", ".join(after[job.name]) if job.name in after else ""
        reason = _named(job.reason, names) if job.reason else ""
        table.add_row(mark, f"● {job.name}", render.state_text(job.state.value), arrow, job.id, reason)
    return Group(title, table)


def table(items: list[v1.WorkflowSummary]) -> RenderableType:
    """Workflows, newest first: id, name, jobs, owner, when."""
    out = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("id", "name", "jobs", "owner", "created"):
        out.add_column(column, overflow="fold")
    for wf in items:
        out.add_row(wf.id, wf.name or "-", str(wf.jobs), wf.owner, render.fmt_time(wf.created_at))
    return out
