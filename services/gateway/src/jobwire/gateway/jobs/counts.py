"""HTTP for ``/v1/jobs/counts``: how many jobs are in each state, for a dashboard or ``jobwire counts``.

Counts follow the same visibility as the list: a user counts only their own jobs, an admin everyone's
(or one owner's with ``owner=``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from jobwire.contracts import v1
from jobwire.store import queries

from ..params import Caller, Res
from .schemas import parse_labels


class JobCounts(msgspec.Struct, kw_only=True):
    """Jobs per state (every state is present, zero included) and their sum."""

    by_state: dict[str, int]
    total: int


class JobCountController(Controller):
    path = "/v1/jobs/counts"
    tags = ["jobs"]

    @get("/", summary="How many jobs are in each state", opt={"scope": "jobs:read"})
    async def count_jobs(
        self,
        res: Res,
        caller: Caller,
        node: FromQuery[str | None] = None,
        name: FromQuery[str | None] = None,
        label: Annotated[
            list[str] | None, QueryParameter(description="KEY=VALUE, repeatable: every pair must match")
        ] = None,
        owner: FromQuery[str | None] = None,
    ) -> JobCounts:
        by_state = dict.fromkeys((s.value for s in v1.JobState), 0)
        if caller.visible_owner is not None:
            if owner not in (None, caller.owner):
                return JobCounts(by_state=by_state, total=0)  # others' jobs do not exist for this caller
            owner = caller.owner
        found = await res.read(
            queries.count_jobs_sync, node=node, name=name, labels=parse_labels(label), owner=owner
        )
        by_state.update(found)
        return JobCounts(by_state=by_state, total=sum(by_state.values()))
