"""Reading an array: counts over every task (made or not), pages in index order, a state filter."""

from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from jobwire.store import arrays
from jobwire.store.models import ArrayRow, JobRow, TransitionRow

pytestmark = pytest.mark.integration
S = v1.JobState


async def seed(sessions, *, count=10, made=4, states=("succeeded", "failed", "running", "failed"), **flags):
    aid = v1.new_job_id()
    now = datetime.now(UTC)
    spec = v1.encode(v1.JobSpec(command=["true"]))
    async with sessions() as s, s.begin():
        s.add(
            ArrayRow(
                id=aid, owner="alice", name="sweep", spec=spec, count=count, start=5, parallelism=2,
                materialised=made, priority=0, held=flags.get("held", False),
                cancelled=flags.get("cancelled", False), created_at=now,
            )
        )  # fmt: skip
        for offset, state in enumerate(states[:made]):
            s.add(
                JobRow(
                    id=v1.array_task_id(aid, offset), owner="alice", state=state, attempt=1, max_attempts=1,
                    priority=0, spec=spec, created_at=now, cancel_requested=False, delete_requested=False,
                    array_id=aid, array_index=5 + offset, exit_code=1 if state == "failed" else None,
                )
            )  # fmt: skip
    return aid


async def test_counts_cover_every_task_and_pages_walk_indices(sessions):
    aid = await seed(sessions)
    async with sessions() as s:
        view = await arrays.get_array(s, aid, limit=3)
        assert view is not None
        assert {k: n for k, n in view.counts.items() if n} == {
            "succeeded": 1,
            "failed": 2,
            "running": 1,
            "queued": 6,
        }
        assert [(t.index, t.state, t.job_id is not None) for t in view.tasks] == [
            (5, S.SUCCEEDED, True), (6, S.FAILED, True), (7, S.RUNNING, True)
        ]  # fmt: skip
        assert view.next_cursor == "7"
        nxt = await arrays.get_array(s, aid, after=int(view.next_cursor), limit=3)
        assert [(t.index, t.state) for t in nxt.tasks] == [(8, S.FAILED), (9, S.QUEUED), (10, S.QUEUED)]
        tail = await arrays.get_array(s, aid, after=12, limit=3)
        assert [t.index for t in tail.tasks] == [13, 14] and tail.next_cursor is None
        assert await arrays.get_array(s, aid, owner="bob") is None


async def test_a_state_filter_lists_only_those_tasks(sessions):
    aid = await seed(sessions)
    async with sessions() as s:
        failed = await arrays.get_array(s, aid, states=["failed"])
        assert [(t.index, t.exit_code) for t in failed.tasks] == [
            (6, 1),
            (8, 1),
        ] and failed.next_cursor is None
        waiting = await arrays.get_array(s, aid, states=["queued"], limit=4)
        assert [t.index for t in waiting.tasks] == [9, 10, 11, 12] and waiting.next_cursor == "12"
        both = await arrays.get_array(s, aid, states=["failed", "queued"], limit=3)
        assert [t.index for t in both.tasks] == [6, 8, 9]


async def test_unmade_tasks_of_a_cancelled_array_count_as_cancelled(sessions):
    aid = await seed(sessions, made=1, states=("cancelled",), cancelled=True)
    async with sessions() as s:
        view = await arrays.get_array(s, aid, limit=2)
        assert view.counts["cancelled"] == 10 and view.counts["queued"] == 0
        assert [t.state for t in view.tasks] == [S.CANCELLED, S.CANCELLED]


def test_attempts_are_read_from_the_history():
    at = datetime.now(UTC)
    rows = [
        TransitionRow(state="queued", attempt=0, at=at),
        TransitionRow(state="starting", attempt=1, node="a", at=at),
        TransitionRow(state="running", attempt=1, node="a", at=at),
        TransitionRow(state="failed", attempt=1, node="a", exit_code=3, reason="boom", at=at),
        TransitionRow(state="queued", attempt=1, at=at),
        TransitionRow(state="starting", attempt=2, node="b", at=at),
        TransitionRow(state="lost", attempt=2, node="b", at=at),
    ]
    got = [(a.attempt, a.state, a.node, a.exit_code, a.reason) for a in arrays.attempts_of(rows)]
    assert got == [(1, S.FAILED, "a", 3, "boom"), (2, S.LOST, "b", None, None)]
