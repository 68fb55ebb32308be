"""Attempts an executor before issue 16's one layout left with its bookkeeping in the job's directory.

Batch jobs that ran as the executor's own account kept everything at the top of the attempt
directory ``<root>/jobs/<job>/<attempt>/``: the executor's bookkeeping (run.json, the batch id, the
submit marker, state.json, signal, reported) beside the wrapper's files and the logs. Every attempt now
keeps its bookkeeping in ``<root>/.executor/jobs/<job>/<attempt>/``. An executor restarted on the new
code moves it there before it adopts (:func:`move_bookkeeping`), so a batch job still queued or
running is followed to its end, and one already reported is not reported again.

Crash-safe and idempotent: each file is moved with ``mv`` (one rename on one filesystem; across two,
the old copy is removed only once the new one is whole, so an old copy still there is the one to
keep); run.json, which marks an attempt still to move, goes last. An attempt whose run.json is
already in the executor's tree was laid out by this executor: a run.json, state.json or signal at the
top of its job's directory is the job's own file and left alone. Only regular files are moved, never
a link. Only for jobs that ran as the executor's own account (``self``): their directory was never
another account's, so nothing in it was planted by one.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence

from ..transport import Transport
from . import layout as L

log = logging.getLogger(__name__)


async def move_bookkeeping(transport: Transport, root: str, names: Sequence[str]) -> list[str]:
    """Move ``names`` and run.json of every attempt below ``<root>/jobs`` that still has run.json at
    its top into the executor's own tree. Returns the attempt directories moved (none the second time)."""
    jobs = posixpath.join(root, "jobs")
    try:
        entries = await transport.list_dir(jobs, depth=2)
    except FileNotFoundError:
        return []
    dirs = [
        posixpath.join(jobs, e.name)
        for e in entries
        if e.kind == "dir" and e.name.count("/") == 1 and L.ATTEMPT_NAME.match(e.name.rsplit("/", 1)[1])
    ]
    count = len(dirs)
    seen = await transport.probe([*dirs, *(_own(root, jobs, p) for p in dirs)], stat=[L.RUN_JSON])
    old = [
        job.path
        for job, own in zip(seen[:count], seen[count:], strict=True)
        if L.RUN_JSON in job.stats and L.RUN_JSON not in own.stats
    ]
    moved = []
    for path in old:
        if await _move_one(transport, root, path, [n for n in names if n != L.RUN_JSON]):
            moved.append(path)
    if moved:
        log.info("moved the bookkeeping of %d attempt(s) of an older executor to %s", len(moved), L.OWN_TREE)
    return moved


def _own(root: str, jobs: str, path: str) -> str:
    """The executor's own directory of the attempt whose job's directory is ``path``."""
    return posixpath.join(root, L.OWN_TREE, "jobs", posixpath.relpath(path, jobs))


async def _move_one(transport: Transport, root: str, path: str, names: Sequence[str]) -> bool:
    jobs = posixpath.join(root, "jobs")
    own = _own(root, jobs, path)
    regular = {e.name for e in await transport.list_dir(path, depth=1) if e.kind == "file"}
    if L.RUN_JSON not in regular:
        return False  # a link or a directory by that name: not an attempt of an older executor's
    await transport.mkdir(own)
    for p in (posixpath.join(root, L.OWN_TREE), own):
        await transport.chmod(p, 0o700)
    rest = [posixpath.join(path, n) for n in names if n in regular]
    for batch in (rest, [posixpath.join(path, L.RUN_JSON)]):
        if batch:
            (await transport.run(["mv", "-f", "-t", own, "--", *batch])).check(f"moving {path}'s files")
    return True
