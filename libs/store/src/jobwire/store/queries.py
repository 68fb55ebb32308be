"""The read side: jobs and nodes as contract types, in a fixed number of queries per call.

The gateway answers every GET from here. A page of jobs, or one job, costs two statements whatever its size
(the rows, then the transitions of them all; on SQLite one, the rows bringing their transitions) and one
more when it holds queued jobs (their queue positions and estimated starts with everything those need,
``estimates``), so a list never degrades into one query per job; each is served by an index that matches it,
so it costs the same at a million jobs and at any cursor depth. Rows are fetched as plain result rows, not
ORM objects (building those cost more than the SQL). Counts are read from ``job_counts``, which triggers
keep (migrations 0003, 0005, 0011).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict, namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    String,
    Subquery,
    Text,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import processors
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased
from sqlalchemy.types import UserDefinedType

from jobwire.contracts import v1
from jobwire.contracts.v1 import feasibility

from . import estimates
from .arrays import attempts_of
from .models import JobCountRow, JobLabelRow, JobRow, NodeRow, TransitionRow, UTCDateTime, WorkflowRow

#: The largest page ``list_jobs`` serves; keeps the ``IN`` lists of the follow-up queries bounded.
MAX_PAGE_SIZE = 1000
_ID_PATTERN = re.compile(r"^[0-9A-Za-z-]{1,36}$(?!\n)")
#: the hex of 1 to 36 ASCII characters, lower case as ``bytes.hex`` writes it
_HEX_CURSOR = re.compile(r"(?:[0-7][0-9a-f]){1,36}")
_QUEUED = v1.JobState.QUEUED.value
_ON_NODE = sorted(s.value for s in v1.ON_NODE)


class InvalidCursor(ValueError):
    """A page cursor that this module did not hand out (or that was altered on the way)."""


def encode_cursor(job_id: str) -> str:
    """Opaque to clients: the hex of the last id on the page. Hex, not base64: a cursor is then exactly
    one regular pattern (published in the OpenAPI schema), and nothing in it is silently skipped, as
    base64 decoding skips characters outside its alphabet."""
    return job_id.encode().hex()


def decode_cursor(cursor: str) -> str:
    if not _HEX_CURSOR.fullmatch(cursor):
        raise InvalidCursor(f"malformed cursor {cursor[:64]!r}: pass back the cursor of a previous page")
    job_id = bytes.fromhex(cursor).decode("ascii")
    if not _ID_PATTERN.match(job_id):
        raise InvalidCursor(f"malformed cursor {cursor[:64]!r}: it does not hold a job id")
    return job_id


def row_to_job(
    row: Any,
    transitions: Iterable[Any],
    labels: Mapping[str, str] | None,
    queue_position: int | None,
    estimated_start: datetime | None = None,
) -> v1.Job:
    """A ``v1.Job`` from its row; the columns win over the stored spec for what the system decides.

    ``row`` and ``transitions`` are ``JobRow``/``TransitionRow`` or plain result rows of their columns
    (what the read path fetches: no ORM objects to build). ``labels`` None means the spec's own (what the
    scheduler stores in ``job_labels`` too).
    """
    transitions = list(transitions)
    job = _job_of_spec(row.id, row.spec)
    job.name, job.node, job.priority = row.name, row.node, row.priority
    if job.retry is None or row.max_attempts != 1:  # a 1 beside ``retry`` gives way, as Job's check did
        job.max_attempts = row.max_attempts
    if row.backend is not None:
        job.backend = row.backend
    if labels is not None:
        job.labels = dict(labels)
    job.owner, job.state, job.attempt = row.owner, _STATES[row.state], row.attempt
    job.reason = feasibility.with_position(row.reason, queue_position, row.node)
    job.queue_position, job.estimated_start, job.exit_code = queue_position, estimated_start, row.exit_code
    job.created_at, job.started_at, job.ended_at = row.created_at, row.started_at, row.ended_at
    job.transitions = [
        v1.TransitionRecord(state=_STATES[t.state], at=t.at, reason=t.reason, attempt=t.attempt)
        for t in transitions
    ]
    job.usage = v1.decode(row.usage, v1.Usage) if row.usage else None
    job.artifacts = v1.decode(row.artifacts, list[v1.Artifact]) if row.artifacts else []
    job.ports = v1.decode(row.ports, dict[str, str]) if row.ports else {}
    job.details = v1.decode(row.details, dict[str, Any]) if row.details else {}
    job.array_id, job.array_index, job.not_before = row.array_id, row.array_index, row.not_before
    job.attempts = attempts_of(transitions)
    return job


_STATES = {s.value: s for s in v1.JobState}  # ``JobState(value)`` costs microseconds a call


def _job_of_spec(job_id: str, spec: bytes) -> v1.Job:
    """The stored spec decoded straight into a ``Job`` (its JSON object is a Job's less the id, and the
    other Job fields are set from the columns after): one decode and one validation, where decoding a
    ``JobSpec`` and copying its 40 fields into a new ``Job`` took two and a dict, and was most of a
    page's Python time. Ids are ``[0-9A-Za-z-]``: nothing to escape. The spec was checked when it was
    accepted, so its cross-field checks are not run again (``decode_stored``)."""
    head = b'{"id":"' + job_id.encode() + b'"'
    try:
        return v1.decode_stored(head + (b"," + spec[1:] if spec.strip() != b"{}" else b"}"), v1.Job)
    except msgspec.DecodeError:  # not one compact JSON object: decoded the long way
        spec_ = v1.decode(spec, v1.JobSpec)
        return v1.Job(**{f: getattr(spec_, f) for f in v1.JobSpec.__struct_fields__}, id=job_id)


async def get_job(session: AsyncSession, job_id: str, *, owner: str | None = None) -> v1.Job | None:
    """One job, or None when it does not exist (or, with ``owner``, belongs to someone else).

    Two statements: the row, then its transitions (SQLite: one, the row with them); a queued one's
    position and estimated start add one
    (``estimates``).
    """
    return await session.run_sync(get_job_sync, job_id, owner=owner)


def get_job_sync(session: Session, job_id: str, *, owner: str | None = None) -> v1.Job | None:
    """``get_job`` on a synchronous session: every read here is written once, synchronously, and run
    either in one greenlet of an ``AsyncSession`` (``run_sync``: one switch for the whole read, not
    one per statement) or in a worker thread on a synchronous SQLite connection (``reader``)."""
    params = {"id": job_id, **({"owner": owner} if owner is not None else {})}
    conn = session.connection()
    statement = _job_statement(owner is not None, conn.dialect.name == "postgresql")
    found = conn.execute(statement, params).one_or_none()
    if found is None:
        return None
    return _assemble(session, [found])[0]


#: every column of a job, fetched as plain rows: building ORM objects cost more than the query
_JOB_COLUMNS = tuple(JobRow.__table__.c)
_AWARE = DateTime(timezone=True)
#: a fetched row as the read path hands it on (to ``row_to_job`` and ``estimates``): a named tuple of
#: the columns' keys. An attribute of SQLAlchemy 2.1's ``Row`` costs 0.7-1 us (its by-name lookup runs
#: after the normal one misses; an index costs 0.03), 25 a job: ``row_to_job`` took 2.0 ms of a page of
#: 50 on rows against 0.6 ms on these (in-process, 1M jobs on PostgreSQL), each made in ~1 us.
_job_fields: Callable[[Iterable[Any]], Any] = namedtuple(  # type: ignore[attr-defined]
    "JobFields",
    [*(c.key for c in _JOB_COLUMNS), "transitions"],  # the last: ``_transitions``
)._make


class _SqliteAware(UserDefinedType[datetime]):
    """A SQLite time text with its zone (``_fetched``), read into an aware datetime in C."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TEXT"

    def result_processor(self, dialect: Any, coltype: object) -> Callable[[Any], datetime | None]:
        convert: Callable[[Any], datetime | None] = processors.str_to_datetime
        return convert


def _fetched(columns: Iterable[ColumnElement[Any]], postgres: bool) -> list[ColumnElement[Any]]:
    """``columns`` as a read selects them. On PostgreSQL a time column (naive UTC, ``UTCDateTime``) is
    read as ``timestamptz`` (``timezone('UTC', at)``), which asyncpg decodes into an aware UTC datetime
    in C, the same value ``UTCDateTime`` makes in Python: a function call per time of a page (four a
    job and one a transition, 6% of the gateway's samples under read_ab). Labelled with the column's
    key, so rows read the same.

    On SQLite (naive UTC as ``YYYY-MM-DD HH:MM:SS.ffffff`` text) a time is read with ``+00:00``
    appended, which SQLAlchemy's compiled ``str_to_datetime`` (``fromisoformat``) makes into the same
    aware UTC datetime in one C call; ``UTCDateTime`` took three Python calls around it for each of a
    page's ~250 times (~6% of a page's CPU in-process)."""
    if not postgres:
        return [
            type_coerce(c.op("||")(literal_column("'+00:00'")), _SqliteAware()).label(c.key)
            if isinstance(c.type, UTCDateTime)
            else c
            for c in columns
        ]
    return [
        type_coerce(func.timezone("UTC", c), _AWARE).label(c.key) if isinstance(c.type, UTCDateTime) else c
        for c in columns
    ]


class _Transition(msgspec.Struct, array_like=True):
    """A transition as ``_SQLITE_TRANSITIONS`` hands it over (what ``row_to_job`` and ``attempts_of``
    read of a ``TransitionRow``)."""

    state: str
    at: datetime
    reason: str | None
    attempt: int
    node: str | None
    exit_code: int | None


_decode_transitions = msgspec.json.Decoder(list[_Transition]).decode


def _transitions(job_id: Any, postgres: bool) -> ColumnElement[Any]:
    """A job's transitions as one JSON text column of the statement that reads the job, in id order,
    each an array of ``_Transition``'s fields, the time in RFC 3339 UTC (stored as naive UTC), found on
    ``ix_job_transitions_job_id`` for the one job. A page's transitions were a second statement: a
    round trip, and ~200 rows each wrapped by SQLAlchemy, converted (on SQLite ``UTCDateTime``: two
    calls per time) and grouped in Python; on SQLite its ``IN`` list of the page's ids was rendered into
    a new text on every page too. msgspec decodes this in C, times included."""
    t = TransitionRow.__table__.c
    if postgres:
        text_at = func.to_char(t.at, literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""))
        entry = func.json_build_array(t.state, text_at, t.reason, t.attempt, t.node, t.exit_code)
        listed = cast(func.json_agg(postgresql.aggregate_order_by(entry, t.id)), Text)
        found = func.coalesce(listed, literal_column("'[]'"))
        return select(found).where(t.job_id == job_id).scalar_subquery()
    at = func.replace(t.at, literal_column("' '"), literal_column("'T'")).concat(literal_column("'Z'"))
    entry = func.json_array(t.state, at, t.reason, t.attempt, t.node, t.exit_code)
    ordered = (
        select(type_coerce(entry, String).label("t"))
        .where(t.job_id == job_id)
        .order_by(t.id)  # walked in this order: the index's entries for one job follow the rowid
        .correlate(job_id.table)
        .subquery()
    )
    return select(func.json_group_array(func.json(ordered.c.t))).scalar_subquery()


@functools.cache
def _job_statement(by_owner: bool, postgres: bool) -> Select[Any]:
    columns = [*_fetched(_JOB_COLUMNS, postgres), _transitions(JobRow.id, postgres).label("transitions")]
    query = select(*columns).where(JobRow.id == bindparam("id"))
    return query.where(JobRow.owner == bindparam("owner")) if by_owner else query  # position: estimates


async def list_jobs(
    session: AsyncSession,
    *,
    states: Sequence[str] | None = None,
    node: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    array: str | None = None,
    workflow: str | None = None,
) -> tuple[list[v1.Job], str | None]:
    """``list_jobs_sync`` (its filters, its answer) in one greenlet of ``session``."""
    return await session.run_sync(
        list_jobs_sync,
        states=states,
        node=node,
        name=name,
        labels=labels,
        owner=owner,
        limit=limit,
        cursor=cursor,
        array=array,
        workflow=workflow,
    )


def list_jobs_sync(
    session: Session,
    *,
    states: Sequence[str] | None = None,
    node: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    array: str | None = None,
    workflow: str | None = None,
) -> tuple[list[v1.Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last one).

    Filters combine with AND; ``states`` matches any of its states and ``labels`` needs every pair.
    An empty ``states`` or ``labels`` filters nothing. ``array`` keeps an array's tasks (walked on
    ``ix_jobs_array_id_id``); ``workflow`` the jobs of a workflow (its stored ids, read in one more
    query, each found by its primary key; a workflow that does not exist has none). Raises
    ``InvalidCursor`` for a cursor this module did not produce and ``ValueError`` for a limit outside
    1..MAX_PAGE_SIZE.

    Two statements whatever the page size (the page, then its transitions; on SQLite the page's rows
    bring their transitions: one), and one more for a page
    holding queued jobs (their positions and estimated starts, ``estimates.estimate``). The statement is
    built once per combination of filters (with bound parameters) and kept: building it costs more
    Python time than the database spends answering it.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}")
    params: dict[str, Any] = {"limit": limit + 1}
    if cursor is not None:
        params["before"] = decode_cursor(cursor)
    wanted = sorted(set(states or ()))
    params.update({f"state{i}": state for i, state in enumerate(wanted)})
    for i, (key, value) in enumerate((labels or {}).items()):
        params[f"key{i}"], params[f"value{i}"] = key, value
    params.update(
        {
            k: v
            for k, v in (("name", name), ("owner", owner), ("node", node), ("array", array))
            if v is not None
        }
    )
    if workflow is not None:
        ids = _workflow_job_ids(session, workflow)
        after = params.get("before")
        params["ids"] = [i for i in ids if after is None or i < after]
        if not params["ids"]:
            return [], None
    statement = _page_statement(
        _Shape(
            array=array is not None,
            workflow=workflow is not None,
            labels=len(labels or {}),
            name=name is not None,
            owner=owner is not None,
            node=node is not None,
            states=len(wanted),
            before=cursor is not None,
            postgres=session.get_bind().dialect.name == "postgresql",
        )
    )
    found = session.connection().execute(statement, params).all()
    next_cursor = encode_cursor(found[limit - 1].id) if len(found) > limit else None
    return _assemble(session, found[:limit]), next_cursor


def _workflow_job_ids(session: Session, workflow: str) -> list[str]:
    """The ids of a workflow's jobs (its stored ``{name: id}``), none for an unknown workflow."""
    if not v1.is_job_id(workflow):
        return []
    stored = session.connection().scalar(select(WorkflowRow.jobs).where(WorkflowRow.id == workflow))
    return [] if stored is None else list(v1.decode(stored, dict[str, str]).values())


@dataclass(frozen=True)
class _Shape:
    """Which filters a list has (not their values): one statement per shape."""

    labels: int
    name: bool
    owner: bool
    node: bool
    states: int
    before: bool
    postgres: bool
    array: bool = False
    workflow: bool = False


@functools.lru_cache(maxsize=512)
def _page_statement(shape: _Shape) -> Select[Any]:
    page = _page(shape)
    columns = _fetched((page.c[c.key] for c in _JOB_COLUMNS), shape.postgres)
    columns.append(_transitions(page.c.id, shape.postgres).label("transitions"))
    return select(*columns).order_by(page.c.id.desc())


def _page(shape: _Shape) -> Subquery:
    """The newest ``:limit`` matching rows, as a subquery whose every step an index serves.

    Each filter has an index ending in the id (``ix_jobs_*_id``, ``ix_job_labels_key_value_job_id``), so
    a page is a seek to the cursor and a walk of ``limit`` entries. One filter leads the walk (a label,
    else the name, owner, state, node); the others are checked on the rows walked. Several states are one
    walk per state, each limited, merged by a sort of at most ``limit`` rows per state: an ``IN`` over
    the state index returns matches in state order, and the database would sort every match.

    PostgreSQL drops a column fixed by ``=`` from the sort key, so the primary key seems to serve
    ``ORDER BY id`` as well, and the planner may walk it, filtering: cheap while matches are spread
    evenly, a walk of the whole table for a filter whose jobs are all old (a retired node). There the
    leading column is fixed with ``= ANY(ARRAY[...])`` and kept in the sort key, which only its index
    serves.
    """
    query = select(JobRow)
    order: InstrumentedAttribute[str] = JobRow.id
    fixed: list[tuple[InstrumentedAttribute[Any], str]] = []  # (column, parameter), the leading one first
    if shape.array:
        fixed.append((JobRow.array_id, "array"))  # an array's tasks are few beside all jobs: it leads
    if shape.workflow:
        query = query.where(JobRow.id.in_(bindparam("ids", expanding=True)))
    if shape.labels:
        query = query.join(JobLabelRow, JobLabelRow.job_id == JobRow.id)
        fixed += [(JobLabelRow.key, "key0"), (JobLabelRow.value, "value0")]
        order = JobLabelRow.job_id  # the same value; ordering by the walked index's column uses it
    fixed += [
        (c, p) for c, p, on in ((JobRow.name, "name", shape.name), (JobRow.owner, "owner", shape.owner)) if on
    ]
    state_leads = not fixed
    if shape.node:
        fixed.append((JobRow.node, "node"))
    for i in range(1, shape.labels):
        label = aliased(JobLabelRow)  # its own name: the page already joins job_labels
        query = query.where(
            exists().where(
                label.job_id == JobRow.id,
                label.key == bindparam(f"key{i}"),
                label.value == bindparam(f"value{i}"),
            )
        )
    if shape.before:
        query = query.where(order < bindparam("before"))

    def walk(state: str | None) -> Select[Any]:
        columns = list(fixed)
        if state is not None:
            columns.insert(0 if state_leads else len(columns), (JobRow.state, state))
        conditions = [column == bindparam(param) for column, param in columns]
        ordering = [order.desc()]
        if shape.postgres and columns:
            lead, param = columns[0]
            conditions[0] = lead == any_(postgresql.array([bindparam(param)]))
            ordering.insert(0, lead.desc())
        return query.where(*conditions).order_by(*ordering).limit(bindparam("limit"))

    if shape.states <= 1:
        return walk("state0" if shape.states else None).subquery("page")
    walks = [walk(f"state{i}").subquery(f"walk{i}").select() for i in range(shape.states)]
    merged = union_all(*walks).subquery("walks")
    return select(merged).order_by(merged.c.id.desc()).limit(bindparam("limit")).subquery("page")


async def count_jobs(
    session: AsyncSession,
    *,
    node: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, int]:
    """``count_jobs_sync`` (its filters, its answer) in one greenlet of ``session``."""
    return await session.run_sync(count_jobs_sync, node=node, name=name, labels=labels, owner=owner)


def count_jobs_sync(
    session: Session,
    *,
    node: str | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, int]:
    """How many jobs are in each state (states with none are left out): one query.

    Overall, per owner, per node or both are read from ``job_counts`` (one row per state, kept by
    triggers; ``'*'`` rows are every owner or every node);
    a name or label filter counts the matching jobs through their indexes.
    """
    if name is None and not labels and "*" not in (owner, node):  # '*' names the rollup rows
        found = session.connection().execute(
            _COUNTS, {"owner": owner if owner is not None else "*", "node": node if node is not None else "*"}
        )
    else:
        query = select(JobRow.state, func.count()).where(
            *_conditions(node=node, name=name, labels=labels, owner=owner)
        )
        found = session.connection().execute(query.group_by(JobRow.state))
    return {state: int(n) for state, n in found.all() if n}


async def count_jobs_per_node(session: AsyncSession) -> list[tuple[str, str, int]]:
    """``(node, state, jobs)`` for every node ('' for no node) and state that ever had a job: the
    per-node rollup rows of ``job_counts``, one query, no scan of the jobs."""
    rows = await session.execute(
        select(JobCountRow.node, JobCountRow.state, JobCountRow.n).where(
            JobCountRow.owner == "*", JobCountRow.node != "*"
        )
    )
    return [(node, state, int(n)) for node, state, n in rows.all()]


_COUNTS = select(JobCountRow.state, JobCountRow.n).where(
    JobCountRow.owner == bindparam("owner"), JobCountRow.node == bindparam("node")
)


def _conditions(
    *,
    node: str | None,
    name: str | None,
    labels: Mapping[str, str] | None,
    owner: str | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if node is not None:
        conditions.append(JobRow.node == node)
    if name is not None:
        conditions.append(JobRow.name == name)
    if owner is not None:
        conditions.append(JobRow.owner == owner)
    for key, value in (labels or {}).items():
        label = aliased(JobLabelRow)  # its own name: the page may already join job_labels
        conditions.append(exists().where(label.job_id == JobRow.id, label.key == key, label.value == value))
    return conditions


def _assemble(session: Session, rows: Sequence[Any]) -> list[v1.Job]:
    """Jobs for rows of ``_JOB_COLUMNS`` and their transitions (``_transitions``), and for the queued
    ones their fair-share positions and estimated starts, in one more statement.

    Labels come from the stored spec (they never change after submit; ``job_labels`` is their index).
    """
    if not rows:
        return []
    rows = [_job_fields(r) for r in rows]
    # queued jobs: their place under fair share and when they should start (replaces the node-wide rank)
    fair = estimates.estimate(session, rows, datetime.now(UTC))
    out = []
    for row in rows:
        position, start = fair.get(row.id, (None, None))
        out.append(row_to_job(row, _decode_transitions(row.transitions), None, position, start))
    return out


async def list_nodes(session: AsyncSession, *, now: datetime | None = None) -> list[v1.NodeView]:
    """Every node with its load, in three queries.

    ``queued_seconds`` is what placement minimises: the expected runtime of everything queued on the node
    plus what is left of what runs there, over its slots. A job without an expected runtime counts 0.
    """
    now = now or datetime.now(UTC)
    nodes = list((await session.execute(select(NodeRow).order_by(NodeRow.name))).scalars())
    queued: dict[str, tuple[int, float]] = {}
    for node, count, total in await session.execute(
        select(JobRow.node, func.count(), func.coalesce(func.sum(JobRow.expected_runtime), 0.0))
        .where(JobRow.state == _QUEUED, JobRow.node.is_not(None))
        .group_by(JobRow.node)
    ):
        if node is not None:
            queued[node] = (int(count), float(total or 0.0))
    running: dict[str, int] = defaultdict(int)
    remaining: dict[str, float] = defaultdict(float)
    for node, expected, started, dispatched in await session.execute(
        select(JobRow.node, JobRow.expected_runtime, JobRow.started_at, JobRow.dispatched_at).where(
            JobRow.state.in_(_ON_NODE), JobRow.node.is_not(None)
        )
    ):
        if node is None:
            continue
        running[node] += 1
        since = started or dispatched
        elapsed = (now - since).total_seconds() if since is not None else 0.0
        remaining[node] += max(0.0, (expected or 0.0) - elapsed)
    views = []
    for n in nodes:
        capacity = v1.decode(n.capacity, v1.NodeCapacity)
        count, queued_total = queued.get(n.name, (0, 0.0))
        views.append(
            v1.NodeView(
                name=n.name,
                backend=n.backend,
                state=n.state,
                capacity=capacity,
                labels=v1.decode(n.labels, dict[str, str]) if n.labels else {},
                pool=n.pool,
                running=running[n.name],
                queued=count,
                queued_seconds=(queued_total + remaining[n.name]) / max(1, capacity.slots),
                last_heartbeat=n.last_heartbeat,
                gpus=v1.decode(n.gpus, list[v1.GpuInfo]) if n.gpus else [],
                version=n.version,
            )
        )
    return views
