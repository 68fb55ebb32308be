"""Response shapes and query parsing for the jobs resource."""

from __future__ import annotations

import msgspec

from jobwire.contracts import v1

from ..problems import InvalidParameter

STATES = ", ".join(s.value for s in v1.JobState)


class JobPage(msgspec.Struct, kw_only=True):
    """One page of jobs, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[v1.Job]
    next_cursor: str | None = None


def parse_states(values: list[str] | None) -> list[str]:
    """``state`` may repeat and each may be a comma list: ``?state=queued,running&state=held``."""
    states = [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
    for state in states:
        if state not in v1.JobState.__members__.values():
            raise InvalidParameter(f"query parameter `state`: unknown state {state!r} (known: {STATES})")
    return states


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """``label=k=v``, repeatable; every pair must match."""
    labels: dict[str, str] = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidParameter(f"query parameter `label`: {value!r} is not KEY=VALUE")
        labels[key] = val
    return labels
