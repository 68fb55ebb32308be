"""Rich renderables for jobs and nodes. Pure: data in, renderables out, so commands stay short."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from jobwire.contracts import v1
from jobwire.contracts.v1 import programs as pv

STATE_STYLES: dict[str, str] = {
    "queued": "yellow",
    "held": "magenta",
    "starting": "cyan",
    "running": "bold blue",
    "succeeded": "bold green",
    "failed": "bold red",
    "cancelled": "dim",
    "timed_out": "red",
    "lost": "magenta",
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def fmt_time(at: datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def fmt_age(at: datetime | None, now: datetime) -> str:
    return f"{fmt_duration((now - at).total_seconds())} ago" if at else "-"


def fmt_until(at: datetime, now: datetime) -> str:
    """``in 2m05s`` for a time ahead, ``now`` once it is here (an estimated start that has passed)."""
    seconds = (at - now).total_seconds()
    return f"in {fmt_duration(seconds)}" if seconds >= 1 else "now"


def fmt_size(size: float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def runtime(job: v1.Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    return ((job.ended_at or now) - job.started_at).total_seconds()


def what_runs(job: v1.JobSpec) -> str:
    """One line saying what the job runs, whatever form the spec took."""
    args = f" {shlex.join(job.args)}" if job.args else ""
    if job.command:
        return shlex.join(job.command)
    if job.code:
        interpreter = f"{shlex.join(job.code.interpreter)} " if job.code.interpreter else ""
        return f"{interpreter}{job.code.filename}{args}  (uploaded)"
    if job.program:
        return f"{job.program}{args}"
    if job.script:
        lines = job.script.strip().splitlines()
        return f"script: {lines[0]}" + (f"  (+{len(lines) - 1} lines)" if len(lines) > 1 else "")
    return "-"


def _resources(r: v1.Resources) -> str:
    parts = [f"{r.cpus:g} cpu"]
    if r.memory_bytes is not None:
        parts.append(fmt_size(r.memory_bytes))
    if r.gpus:
        parts.append(f"{r.gpus} gpu")
    if r.slots != 1:
        parts.append(f"{r.slots} slots")
    if r.nodes != 1:
        parts.append(f"{r.nodes} nodes")
    if r.walltime_seconds is not None:
        parts.append(f"walltime {v1.format_hms(r.walltime_seconds)}")
    return " · ".join(parts)


def _usage(u: v1.Usage) -> str:
    parts = []
    if u.cpu_seconds is not None:
        parts.append(f"cpu {fmt_duration(u.cpu_seconds)}")
    if u.max_rss_bytes is not None:
        parts.append(f"max rss {fmt_size(u.max_rss_bytes)}")
    if u.max_vmem_bytes is not None:
        parts.append(f"max vmem {fmt_size(u.max_vmem_bytes)}")
    if u.io_read_bytes is not None or u.io_write_bytes is not None:
        parts.append(f"io {fmt_size(u.io_read_bytes)} in / {fmt_size(u.io_write_bytes)} out")
    elif u.io_bytes is not None:
        parts.append(f"io {fmt_size(u.io_bytes)}")
    return " · ".join(parts) or "-"


def job_panel(job: v1.Job, now: datetime | None = None) -> Panel:
    """``jobwire status``: the job's fields, then its transitions."""
    now = now or datetime.now(UTC)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    state = state_text(job.state.value)
    if job.reason:
        state.append(f"  ({job.reason})", style="")
    rows: list[tuple[str, str | Text | None]] = [
        ("state", state),
        ("node", job.node),
        ("attempt", f"{job.attempt} of {job.max_attempts}" if job.attempt else None),
        ("queue position", str(job.queue_position) if job.queue_position is not None else None),
        (
            "estimated start",
            f"{fmt_time(job.estimated_start)}  ({fmt_until(job.estimated_start, now)})"
            if job.estimated_start is not None and job.state is v1.JobState.QUEUED
            else None,
        ),
        ("owner", job.owner),
        ("runs", what_runs(job)),
        ("image", job.image),
        ("resources", _resources(job.resources)),
        ("labels", ", ".join(f"{k}={v}" for k, v in job.labels.items()) or None),
        (
            "created",
            f"{fmt_time(job.created_at)}  ({fmt_age(job.created_at, now)})" if job.created_at else None,
        ),
        ("started", fmt_time(job.started_at) if job.started_at else None),
        ("ended", fmt_time(job.ended_at) if job.ended_at else None),
        ("runtime", fmt_duration(runtime(job, now)) if job.started_at else None),
        ("exit code", str(job.exit_code) if job.exit_code is not None else None),
        ("usage", _usage(job.usage) if job.usage else None),
        ("artifacts", f"{len(job.artifacts)} (jobwire artifacts {job.id})" if job.artifacts else None),
    ]
    for label, value in rows:
        if value:
            grid.add_row(label, value)
    parts: list[RenderableType] = [grid]
    if job.transitions:
        parts.append(Text())
        parts.append(transitions_table(job))
    title = f"job {job.id}" + (f" · {job.name}" if job.name else "")
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def transitions_table(job: v1.Job) -> Table:
    table = Table(box=None, header_style="bold dim", pad_edge=False)
    for column in ("STATE", "AT", "ATTEMPT", "REASON"):
        table.add_column(column)
    for t in job.transitions:
        table.add_row(state_text(t.state.value), fmt_time(t.at), str(t.attempt or ""), t.reason or "")
    return table


def jobs_table(jobs: list[v1.Job], now: datetime | None = None, clip_names: bool = True) -> Table:
    """``jobwire ls``: newest first, full ids (UUIDv7 prefixes repeat for a minute, so no short ids);
    long names are clipped on a terminal only (``clip_names``), never in a pipe."""
    now = now or datetime.now(UTC)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=36)
    table.add_column("NAME", overflow="ellipsis", no_wrap=True, max_width=20 if clip_names else None)
    table.add_column("STATE", no_wrap=True)
    table.add_column("NODE", overflow="ellipsis", no_wrap=True)
    retried = any(job.attempt > 1 for job in jobs)
    if retried:
        table.add_column("TRY", justify="right")
    table.add_column("AGE", justify="right", no_wrap=True)
    table.add_column("RAN", justify="right", no_wrap=True)
    table.add_column("EXIT", justify="right")
    for job in jobs:
        cells: list[str | Text] = [job.id, job.name or "", state_text(job.state.value), job.node or ""]
        if retried:
            cells.append(str(job.attempt or ""))
        cells += [
            fmt_age(job.created_at, now).removesuffix(" ago"),
            fmt_duration(runtime(job, now)),
            "" if job.exit_code is None else str(job.exit_code),
        ]
        table.add_row(*cells)
    return table


def slot_bar(used: int, total: int, width: int = 10) -> Text:
    """``████░░░░ 4/8``: how full a node is at a glance."""
    total = max(total, 0)
    cells = min(total, width) if total else width
    filled = 0 if total == 0 else round(cells * min(used, total) / total)
    style = "red" if total and used >= total else "green"
    bar = Text("█" * filled, style=style)
    bar.append("░" * (cells - filled), style="dim")
    bar.append(f" {used}/{total}")
    return bar


def counts_table(by_state: dict[str, int], width: int = 30) -> Table:
    """One row per state with a bar scaled to the largest count, so the shape shows at a glance."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (("STATE", "left"), ("JOBS", "right"), ("", "left")):
        table.add_column(column, no_wrap=True, justify=justify)  # type: ignore[arg-type]
    top = max(by_state.values(), default=0)
    for state, n in by_state.items():
        cells = round(width * n / top) if top else 0
        table.add_row(state_text(state), str(n), Text("█" * cells, style=STATE_STYLES.get(state, "")))
    return table


def nodes_table(nodes: list[v1.NodeView], now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "BACKEND", "STATE", "SLOTS", "QUEUED", "WAIT", "CPUS", "MEMORY", "GPUS", "SEEN"):
        table.add_column(
            column, no_wrap=True, justify="right" if column in ("QUEUED", "WAIT", "CPUS") else "left"
        )
    for node in nodes:
        cap = node.capacity
        gpus = str(cap.gpus) if cap.gpus else "-"
        if node.gpus:
            busy = sum(1 for g in node.gpus if g.job_id)
            gpus = f"{busy}/{len(node.gpus)} busy"
        table.add_row(
            node.name,
            node.backend,
            Text(node.state, style="green" if node.state in ("up", "ready", "online") else "yellow"),
            slot_bar(node.running, cap.slots),
            str(node.queued),
            fmt_duration(node.queued_seconds) if node.queued else "-",
            f"{cap.cpus:g}",
            fmt_size(cap.memory),
            gpus,
            fmt_age(node.last_heartbeat, now),
        )
    return table


def programs_table(programs: list[pv.ProgramView]) -> Table:
    """One row per program per node, in the gateway's order (name, natural version order)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("PROGRAM", "CLUSTER", "NODE"):
        table.add_column(column, no_wrap=True)
    table.add_column("DESCRIPTION", overflow="fold")
    for p in programs:
        table.add_row(p.id, p.cluster, p.node, p.description or "")
    return table


def artifacts_table(artifacts: list[v1.Artifact]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("NAME", overflow="fold")
    table.add_column("SIZE", justify="right", no_wrap=True)
    for a in artifacts:
        table.add_row(a.name, fmt_size(a.size))
    return table


def files_table(entries: list[v1.FileEntry]) -> Table:
    """A job's directory: path, kind (symlinks are shown, never followed), size."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("PATH", overflow="fold")
    table.add_column("KIND", no_wrap=True)
    table.add_column("SIZE", justify="right", no_wrap=True)
    for e in entries:
        table.add_row(
            e.path + ("/" if e.kind == "dir" else ""), e.kind, fmt_size(e.size) if e.kind == "file" else ""
        )
    return table


def inputs_table(inputs: list[dict[str, Any]]) -> Table:
    """Named inputs: owner (when several), name, size, last change."""
    owners = {i.get("owner") for i in inputs}
    table = Table(box=None, header_style="bold", pad_edge=False)
    if len(owners) > 1:
        table.add_column("OWNER")
    table.add_column("NAME", overflow="fold")
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("UPDATED", no_wrap=True)
    for i in inputs:
        row = [str(i["name"]), fmt_size(int(i.get("size") or 0)), str(i.get("updated") or "")[:19]]
        table.add_row(*([str(i.get("owner"))] if len(owners) > 1 else []), *row)
    return table


def tokens_table(tokens: list[dict[str, Any]]) -> Table:
    """Tokens without their secrets: id, owner, scopes, expiry, last use, revoked."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    # the id is what `token revoke` takes: never wrapped or clipped, whatever the width
    longest = max((len(t["id"]) for t in tokens), default=2)
    table.add_column("ID", no_wrap=True, min_width=longest)
    for col in ("OWNER", "SCOPES", "EXPIRES", "LAST USED", "REVOKED"):
        table.add_column(col)
    for t in tokens:
        table.add_row(
            t["id"],
            t["owner"],
            ",".join(t["scopes"]),
            (t.get("expires_at") or "never")[:19],
            (t.get("last_used_at") or "-")[:19],
            (t.get("revoked_at") or "")[:19],
        )
    return table
