"""Tables: jobs, their transitions and labels, nodes, the scheduler's outbox; and the gateway's own
(tokens, audit, quotas and admissions, templates).

Specs, usage and other nested documents are stored as msgspec JSON text, so the
same bytes work on PostgreSQL and SQLite and decode straight into contract types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite keeps no zone; we store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    node: Mapped[str | None] = mapped_column(String(128))
    backend: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    expected_runtime: Mapped[float | None] = mapped_column(Float)
    timeout: Mapped[float | None] = mapped_column(Float)
    spec: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    usage: Mapped[bytes | None] = mapped_column(LargeBinary)
    artifacts: Mapped[bytes | None] = mapped_column(LargeBinary)
    ports: Mapped[bytes | None] = mapped_column(LargeBinary)
    details: Mapped[bytes | None] = mapped_column(LargeBinary)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    delete_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: a task of an array: the array's id and this task's index (see ``ArrayRow``)
    array_id: Mapped[str | None] = mapped_column(String(36))
    array_index: Mapped[int | None] = mapped_column(Integer)
    #: not started before this time: a retry waiting out its backoff
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: a gang job's current attempt: its nodes in rank order and the ranks that ended well
    #: (``{"nodes": [...], "done": [...]}``), so a restarted scheduler knows every rank's node
    gang: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        # an array's tasks in index order (its page of tasks), and its counts by state
        Index("ix_jobs_array_id_index", "array_id", "array_index"),
        Index("ix_jobs_array_id_state", "array_id", "state"),
        Index("ix_jobs_array_id_id", "array_id", "id"),  # GET /v1/jobs?array=, newest first
        # Lists page newest first: an index ending in the id serves each filter without a sort, at any
        # cursor depth (several states are one such walk per state, merged: see queries.list_jobs).
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_node_id", "node", "id"),
        Index("ix_jobs_owner_id", "owner", "id"),
        Index("ix_jobs_owner_state_id", "owner", "state", "id"),  # a user's own jobs in one state
        Index("ix_jobs_name_id", "name", "id"),
        # the scheduler's per-node queue, and queue positions (a range count, priority desc, id asc)
        Index("ix_jobs_node_state_priority", "node", "state", "priority", "id"),
        # an owner's queue on a node: the jobs of theirs ahead of one, an index-only count (fair share)
        Index("ix_jobs_node_state_owner", "node", "state", "owner", "priority", "id"),
        # ix_jobs_active_end (migration 0011, an expression index per database): starting and running
        # jobs by node and expected end, so a node's next free slots are its first entries
    )


class TransitionRow(Base):
    __tablename__ = "job_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    #: the attempt's node and exit code, on the transition that ended it (each attempt shows its own)
    node: Mapped[str | None] = mapped_column(String(128))
    exit_code: Mapped[int | None] = mapped_column(Integer)

    #: Never loaded (``lazy="raise"``). Declared so that a flush inserts a job before the rows pointing
    #: at it: without a relationship the unit of work does not order inserts by foreign key.
    job: Mapped[JobRow] = relationship(lazy="raise")


class JobLabelRow(Base):
    __tablename__ = "job_labels"

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))

    #: See ``TransitionRow.job``: orders the inserts, never loaded.
    job: Mapped[JobRow] = relationship(lazy="raise")

    #: a label filter walks (key, value)'s jobs in id order, so a page needs no sort of every match
    __table_args__ = (Index("ix_job_labels_key_value_job_id", "key", "value", "job_id"),)


class ArrayRow(Base):
    """An array of ``count`` tasks of one spec, stored once. Its tasks become rows in ``jobs`` only as
    the scheduler schedules them: ``materialised`` counts those made so far (indices ``start`` ..
    ``start + materialised - 1``); the rest wait here, queued, held or cancelled as the array is."""

    __tablename__ = "arrays"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(128))
    #: the tasks' spec (without ``array``), msgspec JSON
    spec: Mapped[bytes] = mapped_column(LargeBinary)
    count: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer, default=0)
    parallelism: Mapped[int | None] = mapped_column(Integer)
    materialised: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: set once every task has finished (or the array was cancelled and its live tasks ended)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_arrays_owner_id", "owner", "id"),)


class JobCountRow(Base):
    """How many jobs are in one state: for one owner on one node, and the rollups of those (owner or
    node ``'*'``: every owner, every node). Kept by triggers on ``jobs`` (migrations 0003 and 0005) in
    the same transaction as the job write, so each count the API serves is read from one row per state.

    ``node`` is '' for a job on no node. Rows that drop to 0 stay (their number is bounded by the
    owners, nodes and states in use)."""

    __tablename__ = "job_counts"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    #: the expected runtimes of those jobs summed (None counts 0): a node's queue's mean runtime
    seconds: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_job_counts_node_state", "node", "state", "owner"),)


class WorkflowRow(Base):
    """Jobs submitted together (``POST /v1/workflows``), stored in the transaction that stores them.
    ``jobs`` is the msgspec JSON of ``{name: job id}`` in dependency order; the edges are the jobs'
    own ``after``, so a job read alone still says what it waits for."""

    __tablename__ = "workflows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    jobs: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_workflows_owner_id", "owner", "id"),)


class NodeRow(Base):
    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    backend: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    instance: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64))
    capacity: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[bytes | None] = mapped_column(LargeBinary)
    gpus: Mapped[bytes | None] = mapped_column(LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    """Messages committed with the state change that caused them, published after the commit."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    msg_id: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[bytes | None] = mapped_column(LargeBinary)


class TokenRow(Base):
    """An API token: only the SHA-256 of its secret is kept, so a database dump grants nothing."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_tokens_owner", "owner"),)


class AuditRow(Base):
    """One state-changing request: who, what, when, from where, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(128))
    token_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1024))
    target: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(64))
    #: a request whose record may come twice (a submit's job id: carried by the command, and sent again
    #: by the gateway when it answered otherwise than 201) has one row; NULL for the rest
    request: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ux_audit_log_request", "request", unique=True),
    )


class QuotaRow(Base):
    """Limits for one owner; the row for owner ``*`` holds the defaults. NULL means no limit."""

    __tablename__ = "quotas"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    max_active: Mapped[int | None] = mapped_column(Integer)
    max_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_gpus: Mapped[int | None] = mapped_column(Integer)
    #: fair-share weight between owners (NULL: the ``*`` row's, else 1)
    share: Mapped[float | None] = mapped_column(Float)


class AdmissionRow(Base):
    """A submit the gateway admitted: counts toward the rate window, and toward active jobs and GPUs
    until the scheduler has stored the job (from then on its row in ``jobs`` counts)."""

    __tablename__ = "admissions"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    gpus: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_admissions_owner_at", "owner", "at"),)


class TemplateRow(Base):
    """A named partial JobSpec (msgspec JSON) that submissions start from."""

    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    spec: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def now() -> datetime:
    return datetime.now(UTC)


def as_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}
