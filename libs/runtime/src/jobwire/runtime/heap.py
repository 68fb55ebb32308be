"""Keeping the garbage collector's full collections off a service's request path.

CPython's cyclic collector walks every tracked object of the generation it collects. A started gateway
holds ~130,000 of them (the app, its routes and schemas, SQLAlchemy's and Litestar's caches, imported
modules), all alive for the life of the process, and the objects a request makes (a page of 50 jobs is
thousands) push some of them into the oldest generation, so every so often one request paid a full
collection of the whole heap: 30-170 ms on a 2-core machine (the read path's p99 at a million jobs,
issue 11). ``gc.freeze`` moves what exists at the end of the start into a generation the collector
never walks (what Instagram does for its forked web workers, and it keeps those pages shared after a
fork too); cycles made later are still collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from later collections; the count frozen.

    Call it when a service has started (its app built, connections open, caches filled), not before:
    what is made after it is collected as usual.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_heap() -> None:
    """Give the frozen objects back to the collector (a service stopping inside a process that goes on,
    as the tests and the all-in-one stack run several apps one after the other: their cycles are freed)."""
    gc.unfreeze()
