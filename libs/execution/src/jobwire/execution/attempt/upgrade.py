"""Attempts an executor before issue 16's one layout left with its bookkeeping in the job's directory.

Batch jobs that ran as the executor's own account kept everything at the top of the attempt
directory ``<root>/jobs/<job>/<attempt>/``: the executor's bookkeeping (run.json, the batch id, the
submit marker, state.json, signal, reported) beside the wrapper's files and the logs. Every attempt now
keeps its bookkeeping in ``<root>/.executor/jobs/<job>/<attempt>/``. An executor restarted on the new
code moves it there before it adopts (:func:`move_bookkeeping`), so a batch job still queued or
running is followed to its end, and one already reported is not reported again.

Crash-safe and idempotent: each file is moved with one ``rename`` (``mv``); run.json, which marks an
attempt still to move, goes last; a name already in the executor's tree wins over the old copy, which
is removed. Only regular files are moved, never a link. Only for jobs that ran as the executor's own
account (``self``): their directory was never another account's, so nothing in it was planted by one.
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
    old = [p.path for p in await transport.probe(dirs, stat=[L.RUN_JSON]) if L.RUN_JSON in p.stats]
    moved = []
    for path in old:
        if await _move_one(transport, root, path, [n for n in names if n != L.RUN_JSON]):
            moved.append(path)
    if moved:
        log.info("moved the bookkeeping of %d attempt(s) of an older executor to %s", len(moved), L.OWN_TREE)
    return moved


async def _move_one(transport: Transport, root: str, path: str, names: Sequence[str]) -> bool:
    rel = posixpath.relpath(path, posixpath.join(root, "jobs"))
    own = posixpath.join(root, L.OWN_TREE, "jobs", rel)
    regular = {e.name for e in await transport.list_dir(path, depth=1) if e.kind == "file"}
    if L.RUN_JSON not in regular:
        return False  # a link or a directory by that name: not an attempt of an older executor's
    await transport.mkdir(own)
    for p in (posixpath.join(root, L.OWN_TREE), own):
        await transport.chmod(p, 0o700)
    for batch in ([n for n in names if n in regular], [L.RUN_JSON]):
        if not batch:
            continue
        [there] = await transport.probe([own], stat=batch)
        move = [posixpath.join(path, n) for n in batch if n not in there.stats]
        drop = [posixpath.join(path, n) for n in batch if n in there.stats]
        if move:
            (await transport.run(["mv", "-f", "-t", own, "--", *move])).check(f"moving {rel}'s files")
        if drop:
            (await transport.run(["rm", "-f", "--", *drop])).check(f"removing {rel}'s old files")
    return True
