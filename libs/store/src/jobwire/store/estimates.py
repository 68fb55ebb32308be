"""Where a queued job stands under fair share, and when it is expected to start, for a page of jobs.

The scheduler hands each freed slot to the owner with the lowest load per share, so the jobs that start
before a queued job are its own owner's jobs ahead of it (priority, then submit order) and, meanwhile,
the other owners' jobs in proportion to their shares: with ``k`` of its own ahead and share ``s``, owner
``o`` (share ``s_o``, ``n_o`` jobs queued on the node) starts about ``min(n_o, k * s_o / s)`` of them
first. That sum is the job's ``queue_position`` (0: the next slot is its own). Recent usage is not in the
database, so this is the steady-state order, not the scheduler's exact next pick.

The estimated start plays the node forward: its slots free as the running jobs' expected runtimes (or
walltimes) run out, and each job ahead takes a slot for the mean expected runtime of the node's queued
jobs. A page costs one statement whatever it holds (``_context``): what is ahead of each owner-band's
first job and the bands' stretches (``positions``), the queued counts and expected seconds per node and
owner (``job_counts``), each node's slots, its running jobs' expected ends (the first ``slots`` of them,
``ix_jobs_active_end``) and the shares. Each part is an index lookup or a short index walk, so the cost
does not grow with the queue, the jobs running or the jobs stored. (A second statement counts the rare
band whose stretch passes ``positions.STRETCH_LIMIT`` or that left the queue between the reads.)
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import TextClause
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from jobwire.contracts import v1

from . import positions as pos

_QUEUED = v1.JobState.QUEUED.value
#: the states ``ix_jobs_active_end`` holds, written as its migration's ``WHERE`` (a planner uses a
#: partial index only for a query whose condition implies it, so the text is the same)
_ACTIVE = "state IN ('running', 'starting')"
assert {s.value for s in v1.ON_NODE} == {"running", "starting"}
#: when each starting or running job should end, as ``ix_jobs_active_end`` indexes it (migration 0011)
_END = {
    "sqlite": "julianday(coalesce(started_at, dispatched_at)) * 86400.0 + coalesce(expected_runtime, 0.0)",
    "postgresql": (
        "coalesce(started_at, dispatched_at) + coalesce(expected_runtime, 0.0) * interval '1 second'"
    ),
}
#: ``_END`` as seconds since the Unix epoch
_END_EPOCH = {
    "sqlite": "{e} - 210866760000.0",  # the Julian day of 1970-01-01 (2440587.5) in seconds
    "postgresql": "extract(epoch FROM {e})",
}
#: a node's slots from its capacity (msgspec JSON, ``slots`` left out when 1)
_SLOTS = {
    "sqlite": "coalesce(json_extract(CAST(capacity AS TEXT), '$.slots'), 1)",
    "postgresql": "coalesce((convert_from(capacity, 'UTF8')::json ->> 'slots')::int, 1)",
}


def fair_position(own_ahead: int, share: float, others: Sequence[tuple[int, float]]) -> int:
    """Jobs that start before one with ``own_ahead`` of its owner's own ahead, its owner's ``share``,
    and ``others`` = (queued on the node, share) of every other owner there."""
    if own_ahead == 0:
        return 0  # the next slot is its own, whoever else waits
    mine = share if share > 0 else 1.0
    return own_ahead + sum(min(n, int(own_ahead * s / mine)) for n, s in others)


class NodeQueue:
    """The owners queued on one node, for ``fair_position`` of many jobs there at once: grouped by share,
    each group's queued counts sorted with their running sums, so the sum of ``min(n, c)`` over a group
    is a bisection, not a walk of every owner (a page's 20-50 queued jobs times ~50 owners per node was
    the most of the page's Python time, issue 11)."""

    __slots__ = ("_groups",)

    def __init__(self, queued: Sequence[tuple[int, float]]) -> None:
        by_share: dict[float, list[int]] = defaultdict(list)
        for n, share in queued:
            by_share[share].append(n)
        self._groups = []
        for share, counts in by_share.items():
            counts.sort()
            self._groups.append((share, counts, [0, *itertools.accumulate(counts)]))

    def position(self, own_ahead: int, share: float) -> int:
        """``fair_position(own_ahead, share, queued)``, the same integer."""
        if own_ahead == 0:
            return 0
        mine = share if share > 0 else 1.0
        total = own_ahead
        for s, counts, sums in self._groups:
            c = int(own_ahead * s / mine)  # the expression fair_position rounds, so the same value
            i = bisect.bisect_right(counts, c)
            total += sums[i] + c * (len(counts) - i)
        return total


def start_offsets(
    free_in: Sequence[float], slots: int, mean: float, positions: Sequence[int]
) -> dict[int, float]:
    """Seconds until a job with ``p`` jobs ahead of it gets a slot, for each ``p`` in ``positions``:
    ``free_in`` are the running jobs' seconds left, the other slots are free now.

    Each job ahead takes the slot that frees first for ``mean`` seconds, so slot ``i`` (free in ``f_i``)
    frees at ``f_i, f_i + mean, f_i + 2 mean, ...`` and the ``p``-th job ahead starts at the ``p``-th
    smallest of all those times: computed (``_kth``), not played job by job (thousands of heap steps
    per node for a long queue, the page's largest Python cost)."""
    slots = max(1, slots)
    free = sorted(max(0.0, f) for f in free_in)[:slots]
    free = sorted(free + [0.0] * (slots - len(free)))
    return {p: _kth(free, mean, p) for p in set(positions)}


def _kth(free: list[float], mean: float, k: int) -> float:
    """The ``k``-th (from 0) smallest of ``f + j * mean`` over every ``f`` in ``free`` (sorted) and
    ``j >= 0``. Once every slot frees within one ``mean`` of the others (from ``low``, a ``mean`` below
    the last one, on), the slots take turns in a fixed order; the times below ``low`` come only from
    the slots that free earlier, so a ``k`` among those is the same question on fewer slots."""
    while mean > 0:
        low = free[-1] - mean
        early = [f for f in free if f < low]
        below = [math.ceil((low - f) / mean) for f in early]  # each early slot's times under ``low``
        if k < sum(below):
            free = early
            continue
        turns = sorted([f + j * mean for f, j in zip(early, below, strict=True)] + free[len(early) :])
        k -= sum(below)
        return turns[k % len(turns)] + (k // len(turns)) * mean
    return free[0]


_pairs = msgspec.json.Decoder(list[tuple[str, int]]).decode


def _json_list(values: Sequence[str]) -> str:
    return msgspec.json.encode(values).decode()


def estimate(session: Session, rows: Sequence[Any], now: datetime) -> dict[str, tuple[int, datetime]]:
    """(queue position under fair share, estimated start) for each queued row with a node, by id.

    ``rows`` are job rows (ORM or plain result rows: ``id``, ``state``, ``node``, ``owner``,
    ``priority``, ``not_before``)."""
    queued = [r for r in rows if r.state == _QUEUED and r.node is not None]
    if not queued:
        return {}
    nodes = sorted({r.node for r in queued if r.node is not None})
    bands = pos.bands_of(queued, by_owner=True)
    spread = [(band, jobs) for band, jobs in bands.items() if len(jobs) > 1]
    dialect = session.get_bind().dialect.name
    firsts = [jobs[0].id for jobs in bands.values()]
    statement: TextClause
    if dialect == "postgresql":  # one text whatever the page holds: prepared once, planned rarely
        statement, params = _PG_CONTEXT, {"ids": firsts, "nodes": nodes, **_pg_stretches(spread)}
    else:
        statement = _context(dialect, len(nodes), len(spread))
        params = {
            "ids": _json_list(firsts),
            "nodes": _json_list(nodes),
            **{f"n{i}": node for i, node in enumerate(nodes)},
            **(pos.stretch_params(spread) if spread else {}),
        }
    own: dict[str, int] = {}
    found: list[tuple[int, str]] = []
    per_owner: dict[str, dict[str, int]] = defaultdict(dict)  # node -> owner -> queued there
    expected: dict[str, list[float]] = defaultdict(list)  # node -> its owners' queued seconds
    slots: dict[str, int] = {}
    free_in: dict[str, list[float]] = defaultdict(list)
    shares: dict[str, float] = {}
    epoch_now = now.timestamp()
    # fetched at once: one row per owner queued on each node is most of what comes back (800 rows for
    # 16 nodes of 50 owners), and a row at a time through the result's iterator cost 10 us each; its
    # values come typed and clamped from the statement, so each row is two appends and no conversion
    result = session.connection().execute(statement, params).all()
    rest: list[tuple[str, str, Any, Any]] = []
    if dialect == "postgresql":  # a node's owners come as one row of three arrays (``_PG_OWNERS``)
        for kind, key, _, n, x, owners, counts, seconds in result:
            if kind == "owners":
                per_owner[key] = dict(zip(owners, counts, strict=True))
                expected[key] = seconds
            else:
                rest.append((kind, key, n, x))
    else:
        for kind, key, sub, n, x in result:
            if kind == "owners":  # a node's owners: ``_OWNERS``
                per_owner[key] = dict(_pairs(sub))
                expected[key] = [x]
            else:
                rest.append((kind, key, n, x))
    for kind, key, n, x in rest:
        if kind == "ahead":
            own[key] = int(n)
        elif kind == "stretch":
            found.append((int(n), key))
        elif kind == "node":
            slots[key] = int(n)
        elif kind == "run":
            free_in[key].append(float(x) - epoch_now if x is not None else 0.0)
        elif x is not None:
            shares[key] = float(x)
    if spread:
        pos.place(spread, found, own)
    own.update(pos.count_ahead_sync(session, pos.missing(bands, own), by_owner=True))

    default = shares.get("*", 1.0)
    share_of = shares.get  # ``share_of(owner, default)``: no function of ours per owner (~600 a page)

    # each node's owners with their shares, looked up once a page (not once per job and owner); a job's
    # own owner is in its node's queue too, and its term taken off again (no queue per owner to build)
    queues = {
        node: NodeQueue([(n, share_of(o, default)) for o, n in per_owner[node].items()]) for node in nodes
    }
    positions: dict[str, int] = {}
    on_node: dict[str, list[Any]] = defaultdict(list)
    for r in queued:
        on_node[r.node].append(r)
        ahead, share = own.get(r.id, 0), share_of(r.owner, default)
        position = queues[r.node].position(ahead, share)
        theirs = per_owner[r.node].get(r.owner)
        if ahead and theirs is not None:
            position -= min(theirs, int(ahead * share / (share if share > 0 else 1.0)))
        positions[r.id] = position
    out: dict[str, tuple[int, datetime]] = {}
    for node in nodes:
        mine = on_node[node]
        count = sum(per_owner[node].values())
        total = sum(expected[node])
        mean = total / count if count else 0.0
        offsets = start_offsets(free_in[node], slots.get(node, 1), mean, [positions[r.id] for r in mine])
        for r in mine:
            at = now + timedelta(seconds=offsets[positions[r.id]])
            if r.not_before is not None and r.not_before > at:
                at = r.not_before
            out[r.id] = (positions[r.id], at)
    return out


#: one ``UNION ALL`` part per kind, as SQL text: the statement's shape depends on how many nodes and
#: spread bands a page holds, and SQLAlchemy's compiler took 12-160 ms (on a loaded machine) for each new
#: shape, which was most of the read path's p99; text is joined in microseconds. The parts are what the
#: constructs of ``positions`` and ``job_counts`` compiled to, so the plans are the same.
_AHEAD = (
    "SELECT 'ahead' AS kind, j.id AS key, CAST(NULL AS VARCHAR) AS sub, CAST("
    "(SELECT count(*) FROM jobs AS o WHERE o.node = j.node AND o.state = 'queued' AND o.owner = j.owner"
    " AND o.priority > j.priority) + "
    "(SELECT count(*) FROM jobs AS o WHERE o.node = j.node AND o.state = 'queued' AND o.owner = j.owner"
    " AND o.priority = j.priority AND o.id < j.id) AS INTEGER) AS n, CAST(NULL AS FLOAT) AS x "
    "FROM jobs AS j WHERE j.id IN :ids"
)
_STRETCH = (
    "SELECT {i} AS band, jobs.id AS id FROM jobs WHERE jobs.node = :s{i}_node AND jobs.state = 'queued'"
    " AND jobs.priority = :s{i}_priority AND jobs.id BETWEEN :s{i}_lo AND :s{i}_hi"
    " AND jobs.owner = :s{i}_owner"
)
_STRETCHES = (
    "SELECT 'stretch', stretches.id, CAST(NULL AS VARCHAR), CAST(stretches.band AS INTEGER),"
    " CAST(NULL AS FLOAT) FROM (SELECT stretch.band AS band, stretch.id AS id FROM ({ranges})"
    " AS stretch LIMIT :stretch_limit) AS stretches"
)
#: a node's queued owners as one row: ``[[owner, queued], ...]`` as JSON and their expected seconds
#: summed, not a row per owner (most of the statement's rows: ~570 on a newest page at 1M jobs, each
#: a row for SQLite to hand over, for SQLAlchemy to wrap and for the loop to read)
_OWNERS = (
    "SELECT 'owners', job_counts.node,"
    " json_group_array(json_array(job_counts.owner, CAST(job_counts.n AS INTEGER))), CAST(NULL AS INTEGER),"
    " CAST(sum(CASE WHEN job_counts.seconds > 0 THEN job_counts.seconds ELSE 0 END) AS FLOAT)"
    " FROM job_counts WHERE job_counts.node IN :nodes"
    " AND job_counts.state = 'queued' AND job_counts.owner != '*' AND job_counts.n > 0"
    " GROUP BY job_counts.node"
)
_NODES = (
    "SELECT 'node', nodes.name, CAST(NULL AS VARCHAR), {slots}, CAST(NULL AS FLOAT) FROM nodes"
    " WHERE nodes.name IN :nodes"
)
_RUN = (
    "SELECT 'run', run{i}.node, CAST(NULL AS VARCHAR), CAST(NULL AS INTEGER), CAST({epoch} AS FLOAT) "
    "FROM (SELECT jobs.node AS node, {end} AS e FROM jobs WHERE jobs.node = :n{i} AND {active} "
    "ORDER BY {end} LIMIT coalesce((SELECT {slots} FROM nodes WHERE nodes.name = :n{i}), 1)) AS run{i}"
)
_SHARES = (
    "SELECT 'share', quotas.owner, CAST(NULL AS VARCHAR), CAST(NULL AS INTEGER), CAST(quotas.share AS FLOAT)"
    " FROM quotas WHERE quotas.share IS NOT NULL"
)


@functools.lru_cache(maxsize=512)
def _context(dialect: str, nodes: int, spread: int) -> TextClause:
    """Everything a page's estimates read, as one ``UNION ALL`` of ``(kind, key, sub, n, x)`` rows:

    - ``ahead``: (job id, its owner's queued jobs ahead of it on its node), for ``:ids``;
    - ``stretch``: (job id, band) for the queue between each spread band's first and last page job;
    - ``owners``: (node, its queued owners ``[[owner, queued], ...]`` as JSON, their expected seconds
      summed), from ``job_counts``;
    - ``node``: (node, slots); ``run``: (node, expected end in epoch seconds) of its first ``slots``
      starting or running jobs by expected end; ``share``: (owner, fair-share weight).
    """
    slots, end = _SLOTS[dialect], _END[dialect]
    parts = [_AHEAD]
    if spread:
        ranges = " UNION ALL ".join(_STRETCH.format(i=i) for i in range(spread))
        parts.append(_STRETCHES.format(ranges=ranges))
    parts += [_OWNERS, _NODES.format(slots=slots)]
    for i in range(nodes):
        epoch = _END_EPOCH[dialect].format(e=f"run{i}.e")
        parts.append(_RUN.format(i=i, end=end, epoch=epoch, slots=slots, active=_ACTIVE))
    parts.append(_SHARES)
    # the ids and the nodes as JSON texts read by ``json_each``, not ``IN`` lists: SQLAlchemy rendered an
    # expanding list's placeholders into a new text on every page (its own text is then cached too)
    statement = " UNION ALL ".join(parts).replace("IN :ids", "IN (SELECT value FROM json_each(:ids))")
    return sql_text(statement.replace("IN :nodes", "IN (SELECT value FROM json_each(:nodes))"))


#: ``_RUN`` for every node at once (PostgreSQL)
_RUN_PG = (
    "SELECT 'run', n.node, CAST(NULL AS VARCHAR), CAST(NULL AS INTEGER),"
    " CAST(extract(epoch FROM r.e) AS FLOAT) FROM unnest(CAST(:nodes AS VARCHAR[])) AS n(node)"
    " CROSS JOIN LATERAL (SELECT {end} AS e FROM jobs WHERE jobs.node = n.node AND {active}"
    " ORDER BY {end} LIMIT coalesce((SELECT {slots} FROM nodes WHERE nodes.name = n.node), 1)) AS r"
)
#: ``_context`` for PostgreSQL as ONE statement text: the page's ids, nodes and spread bands go as arrays
#: (``= ANY``, ``unnest ... CROSS JOIN LATERAL``), not as an ``IN`` list and a part per node and band.
#: Every page made a new text there (ids, nodes and bands vary), so PostgreSQL parsed and planned the
#: ~20-part union afresh each time: 3-4 ms of planning against 1.3-1.5 ms of execution (EXPLAIN, 1M
#: jobs, load ~10). One text is prepared once per connection (asyncpg's statement cache) and its plan
#: reused. The same rows as ``_context`` (compared on 36 pages of six filters at a million jobs).
#: PostgreSQL: the queued counts and expected seconds of a node's owners as one row per node of three
#: arrays, not a row per owner: ~570 of the ~600 rows of a newest page's statement (50 owners on 11 of
#: its nodes at 1M jobs), each a SQLAlchemy ``Row`` and a turn of the Python loop, where asyncpg decodes
#: an array into a list in C
_PG_OWNERS = (
    "SELECT 'owners', job_counts.node, CAST(NULL AS VARCHAR), CAST(NULL AS INTEGER), CAST(NULL AS FLOAT),"
    " array_agg(job_counts.owner), array_agg(CAST(job_counts.n AS INTEGER)),"
    " array_agg(CAST(CASE WHEN job_counts.seconds > 0 THEN job_counts.seconds ELSE 0 END AS FLOAT))"
    " FROM job_counts WHERE job_counts.node = ANY(CAST(:nodes AS VARCHAR[]))"
    " AND job_counts.state = 'queued' AND job_counts.owner != '*' AND job_counts.n > 0"
    " GROUP BY job_counts.node"
)
_PG_CONTEXT = sql_text(
    "SELECT kind, key, sub, n, x, CAST(NULL AS VARCHAR[]), CAST(NULL AS INTEGER[]),"  # noqa: S608 - constants
    " CAST(NULL AS FLOAT[]) FROM ("
    + " UNION ALL ".join(
        [
            _AHEAD.replace("j.id IN :ids", "j.id = ANY(CAST(:ids AS VARCHAR[]))"),
            "SELECT 'stretch', stretches.id, CAST(NULL AS VARCHAR), CAST(stretches.band AS INTEGER),"
            " CAST(NULL AS FLOAT) FROM (SELECT b.band - 1 AS band, s.id AS id FROM unnest("
            "CAST(:s_node AS VARCHAR[]), CAST(:s_owner AS VARCHAR[]), CAST(:s_priority AS INTEGER[]),"
            " CAST(:s_lo AS VARCHAR[]), CAST(:s_hi AS VARCHAR[])) WITH ORDINALITY"
            " AS b(node, owner, priority, lo, hi, band) CROSS JOIN LATERAL (SELECT jobs.id FROM jobs"
            " WHERE jobs.node = b.node AND jobs.state = 'queued' AND jobs.priority = b.priority"
            " AND jobs.id BETWEEN b.lo AND b.hi AND jobs.owner = b.owner) AS s LIMIT :stretch_limit)"
            " AS stretches",
            _NODES.format(slots=_SLOTS["postgresql"]).replace(
                "nodes.name IN :nodes", "nodes.name = ANY(CAST(:nodes AS VARCHAR[]))"
            ),
            _RUN_PG.format(end=_END["postgresql"], active=_ACTIVE, slots=_SLOTS["postgresql"]),
            _SHARES,
        ]
    )
    + ") AS parts UNION ALL "
    + _PG_OWNERS
)
assert " IN :" not in _PG_CONTEXT.text  # every list is one array parameter


def _pg_stretches(spread: Sequence[tuple[pos.Band, list[Any]]]) -> dict[str, Any]:
    """``positions.stretch_params`` as one array per column (band ``i`` is element ``i + 1``)."""
    return {
        "s_node": [node for (node, _, _), _ in spread],
        "s_owner": [owner for (_, owner, _), _ in spread],
        "s_priority": [priority for (_, _, priority), _ in spread],
        "s_lo": [jobs[0].id for _, jobs in spread],
        "s_hi": [jobs[-1].id for _, jobs in spread],
        "stretch_limit": pos.STRETCH_LIMIT + 1,
    }
