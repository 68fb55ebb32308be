"""Program catalogs as the executors publish them (KV bucket ``jobwire_programs``, one key per node).

The gateway keeps nothing: each request reads the bucket with one watch (no per-node round trip).
A submit naming a program no node offers is refused before anything is queued; when the bucket
cannot be read the check is skipped and the executor's own refusal stands.
"""

from __future__ import annotations

import logging

import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import codec
from jobwire.contracts.v1 import programs as pv
from jobwire.contracts.v1 import subjects as sj

from ..problems import NotReady, Problem
from ..resources import Resources

log = logging.getLogger(__name__)
#: how many names or versions a refusal lists at most
MAX_LISTED = 20


class UnknownProgram(Problem):
    status, slug, title = 422, "unknown-program", "Unknown program"


async def read_catalogs(res: Resources) -> list[pv.ProgramCatalog] | None:
    """Every node's catalog, or None when the bucket cannot be read (missing, no permission)."""
    try:
        kv = await res.bus.js.key_value(sj.PROGRAM_BUCKET)
        watcher = await kv.watchall(ignore_deletes=True)
    except Exception as e:
        log.warning("the program catalogs in %s cannot be read: %s", sj.PROGRAM_BUCKET, e)
        return None
    out: list[pv.ProgramCatalog] = []
    try:
        async for entry in watcher:
            if entry is None:  # the watch has delivered everything stored
                break
            if not entry.value:
                continue
            try:
                out.append(codec.decode(entry.value, pv.ProgramCatalog))
            except msgspec.MsgspecError as e:
                log.warning("skipping the unreadable program catalog of %s: %s", entry.key, e)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return out


def views(
    catalogs: list[pv.ProgramCatalog],
    *,
    name: str | None = None,
    version: str | None = None,
    cluster: str | None = None,
    node: str | None = None,
) -> list[pv.ProgramView]:
    """One row per program per node, filtered (exact matches), by name, version (natural) and node."""
    rows = [
        pv.ProgramView(
            id=p.id,
            name=p.name,
            version=p.version,
            cluster=c.cluster,
            node=c.node,
            description=p.description,
            published_at=c.at,
        )
        for c in catalogs
        if (cluster is None or c.cluster == cluster) and (node is None or c.node == node)
        for p in c.programs
        if (name is None or p.name == name) and (version is None or p.version == version)
    ]
    return sorted(rows, key=lambda r: (r.name, pv.version_key(r.version), r.cluster, r.node))


async def list_programs(res: Resources, **filters: str | None) -> list[pv.ProgramView]:
    catalogs = await read_catalogs(res)
    if catalogs is None:
        raise NotReady(f"the program catalogs cannot be read from the bus bucket {sj.PROGRAM_BUCKET}")
    return views(catalogs, **filters)


async def check_offered(res: Resources, spec: v1.JobSpec) -> None:
    """422 when no node the job could be placed on (its ``node``/``cluster``) offers its program."""
    if spec.program is None:
        return
    catalogs = await read_catalogs(res)
    if catalogs is None:
        return
    where = views(catalogs, cluster=spec.cluster, node=spec.node)
    if any(v.id == spec.program for v in where):
        return
    name = spec.program.partition("@")[0]
    scope = " on node " + repr(spec.node) if spec.node else ""
    scope += " in cluster " + repr(spec.cluster) if spec.cluster else ""
    versions = list(dict.fromkeys(v.version for v in where if v.name == name))
    if versions:
        hint = f"known versions of {name}: {_listed(versions)}"
    else:
        names = sorted({v.name for v in where})
        hint = f"programs offered: {_listed(names)}" if names else "no node offers any program there"
    raise UnknownProgram(
        f"program {spec.program!r} is offered by no node{scope}; {hint} (see GET /v1/programs)",
        extra={"path": "$.program"},
    )


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown}, ... ({len(items)} in all)"
