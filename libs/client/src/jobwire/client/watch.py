"""``jobwire watch``: follow a job's state and progress until it finishes.

A terminal gets a live line and progress bar; anything else (a pipe, a CI log) gets one line per
change, which reads well in a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from jobwire.contracts import v1

from .api import JobwireClient
from .models import exit_status, job_finished
from .render import fmt_duration, state_text


@dataclass(frozen=True)
class Fraction:
    completed: float
    total: float
    message: str | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.completed / self.total if self.total else 0.0

    def label(self) -> str:
        if self.total == 100 and self.completed == int(self.completed):
            text = f"{self.percent:.0f}%"
        elif self.total == 100:
            text = f"{self.percent:.1f}%"
        else:
            text = f"{self.completed:g}/{self.total:g} ({self.percent:.0f}%)"
        return f"{text}  {self.message}" if self.message else text


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def fraction_of(progress: Any) -> Fraction | None:
    """Read what jobs commonly write: ``{"current": n, "total": m}``, ``{"percent": p}``, ``{"fraction": f}``.

    Anything else is shown as it is, without a bar.
    """
    if _number(progress) is not None:
        return Fraction(min(max(float(progress), 0.0), 100.0), 100.0)
    if not isinstance(progress, dict):
        return None
    raw_message = progress.get("message") or progress.get("stage") or progress.get("status")
    message = str(raw_message) if raw_message is not None else None
    total = _number(progress.get("total"))
    for key in ("current", "completed", "done", "step", "n"):
        current = _number(progress.get(key))
        if current is not None and total:
            return Fraction(min(current, total), total, message)
    percent = _number(progress.get("percent"))
    if percent is not None:
        return Fraction(min(max(percent, 0.0), 100.0), 100.0, message)
    fraction = _number(progress.get("fraction"))
    if fraction is not None:
        return Fraction(min(max(fraction, 0.0), 1.0) * 100.0, 100.0, message)
    return None


class View:
    """What is known so far; renders as a live view or as one plain line per change."""

    def __init__(self, job: v1.Job) -> None:
        self.job_id = job.id
        self.state = job.state.value
        self.node = job.node
        self.attempt = job.attempt
        self.started_at = job.started_at
        self.ended_at = job.ended_at
        self.progress: Any = None
        # what the snapshot already shows; a server replaying the job's history repeats it
        self.seen_until: datetime | None = job.transitions[-1].at if job.transitions else None
        self.progress_at: datetime | None = None

    def apply(self, event: v1.Event) -> str | None:
        """Take in one event; returns a line for a non-terminal when something worth saying changed."""
        if isinstance(event, v1.JobTransitioned):
            if self.seen_until is not None and event.at <= self.seen_until:
                return None
            self.state, self.node, self.attempt = event.state.value, event.node or self.node, event.attempt
            if event.state in (v1.JobState.STARTING, v1.JobState.RUNNING) and self.started_at is None:
                self.started_at = event.at
            self.ended_at = event.at if event.state in v1.TERMINAL else None
            return self.state_line() + (f"  ({event.reason})" if event.reason else "")
        if isinstance(event, v1.JobProgress):
            if self.progress_at is not None and event.at <= self.progress_at:
                return None
            self.progress = event.progress
            return self.progress_line()
        return None

    def state_line(self) -> str:
        where = f" on {self.node}" if self.node else ""
        attempt = f" · attempt {self.attempt}" if self.attempt else ""
        return f"{self.job_id} {self.state}{where}{attempt}"

    def progress_line(self) -> str | None:
        if self.progress is None:
            return None
        fraction = fraction_of(self.progress)
        return f"progress {fraction.label()}" if fraction else f"progress {self.progress}"

    def render(self) -> RenderableType:
        head = Text(f"{self.job_id} ")
        head.append_text(state_text(self.state))
        if self.node:
            head.append(f" on {self.node}")
        if self.started_at is not None:
            ran = ((self.ended_at or datetime.now(UTC)) - self.started_at).total_seconds()
            head.append(f"  {fmt_duration(ran)}", style="dim")
        fraction = fraction_of(self.progress)
        if fraction is None:
            line = self.progress_line()
            return Group(head, Text(line, style="dim")) if line else head
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=fraction.total, completed=fraction.completed, width=40), fraction.label()
        )
        return Group(head, bar)


def watch(client: JobwireClient, job_id: str, console: Console) -> int:
    """Show the job until it finishes; returns what the shell should see (see ``exit_status``)."""
    job = client.get(job_id)
    if not job_finished(job):
        view = View(job)
        current = client.progress(job_id)
        if current is not None:
            view.progress, view.progress_at = current.progress, current.at
        if console.is_terminal:
            with Live(get_renderable=view.render, console=console, refresh_per_second=4):
                for event in client.events(job_id):
                    view.apply(event)
        else:
            for line in (view.state_line(), view.progress_line()):
                if line:
                    console.print(line, highlight=False)
            for event in client.events(job_id):
                line = view.apply(event)
                if line:
                    console.print(line, highlight=False)
        job = client.get(job_id)
    console.print(final_line(job))
    return exit_status(job)


def final_line(job: v1.Job) -> Text:
    line = Text(f"{job.id} ")
    line.append_text(state_text(job.state.value))
    if job.exit_code is not None:
        line.append(f" · exit code {job.exit_code}")
    if job.reason and job.reason != f"exit code {job.exit_code}":
        line.append(f" · {job.reason}")
    if job.started_at and job.ended_at:
        line.append(f" · ran {fmt_duration((job.ended_at - job.started_at).total_seconds())}")
    if job.ended_at:
        ago = (datetime.now(UTC) - job.ended_at).total_seconds()
        if ago > 60:
            line.append(f" · ended {fmt_duration(ago)} ago", style="dim")
    return line
