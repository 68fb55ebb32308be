"""Reading arrays, and the commands on a whole array (the scheduler acts on its live tasks).

A command names the array's id where a job's would go; the gateway refuses at once (409) what would do
nothing, then waits briefly for the array's row to show the change (200), else answers 202.
"""

from __future__ import annotations

import asyncio
import re
import time

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store import arrays

from ..problems import Conflict, InvalidParameter, NotFound
from ..resources import Resources

#: a page cursor: the index after which the page starts
CURSOR = re.compile(r"[0-9]{1,10}")

#: how often the array's row is read again while a command takes effect
POLL = 0.05


class ArrayNotFound(NotFound):
    slug, title = "array-not-found", "Array not found"


class ArrayFinished(Conflict):
    slug, title = "array-finished", "The array already finished"


class ArrayNotHeld(Conflict):
    slug, title = "array-not-held", "The array is not held"


def parse_cursor(cursor: str | None) -> int | None:
    """The index after which a page starts (``next_cursor`` of the previous page)."""
    if cursor is None:
        return None
    if not CURSOR.fullmatch(cursor):  # isdigit() also took "²", which int() then refused (a 500)
        raise InvalidParameter(f"query parameter `cursor`: {cursor[:32]!r} is not a cursor of this array")
    return int(cursor)


async def get_array(
    res: Resources,
    array_id: str,
    *,
    visible: str | None,
    cursor: str | None = None,
    limit: int = 100,
    states: list[str] | None = None,
) -> v1.ArrayView:
    after = parse_cursor(cursor)
    if not v1.is_job_id(array_id):
        raise ArrayNotFound(f"there is no array {array_id!r}")
    async with res.session() as session:
        view = await arrays.get_array(
            session, array_id, owner=visible, after=after, limit=limit, states=states or ()
        )
    if view is None:
        raise ArrayNotFound(f"there is no array {array_id!r}")
    return view


async def command(
    res: Resources, array_id: str, verb: v1.Verb, *, owner: str, visible: str | None
) -> tuple[v1.ArrayView, bool]:
    """Send ``verb`` for the whole array; the array after it, and whether it shows the change yet."""
    view = await get_array(res, array_id, visible=visible, limit=1)
    if view.done or (verb is not v1.Verb.RELEASE and view.cancelled):
        raise ArrayFinished(f"array {array_id} has finished; its tasks can be requeued one by one")
    if verb is v1.Verb.RELEASE and not view.held:
        raise ArrayNotHeld(f"array {array_id} is not held")
    cmd: v1.CancelJob | v1.HoldJob | v1.ReleaseJob
    if verb is v1.Verb.CANCEL:
        cmd = v1.CancelJob(job_id=array_id, reason="array cancelled by user", requested_by=owner)
    elif verb is v1.Verb.HOLD:
        cmd = v1.HoldJob(job_id=array_id, reason="array held by user")
    else:
        cmd = v1.ReleaseJob(job_id=array_id)
    msg_id = sj.command_msg_id(array_id, verb, time.time_ns())
    await res.bus.publish(sj.cmd_subject(verb), cmd, msg_id=msg_id)
    deadline = time.monotonic() + res.settings.wait_timeout
    while True:
        view = await get_array(res, array_id, visible=visible, limit=1)
        if _shows(view, verb):
            return view, True
        if time.monotonic() >= deadline:
            return view, False
        await asyncio.sleep(POLL)


def _shows(view: v1.ArrayView, verb: v1.Verb) -> bool:
    if verb is v1.Verb.CANCEL:
        return view.cancelled
    return view.held if verb is v1.Verb.HOLD else not view.held
