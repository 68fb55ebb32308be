"""Queue positions and estimated starts of a page in bounded reads, whatever the queue's length (issue 11).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A queued job's estimated start needs, per node, the mean expected runtime of its queue, how many jobs
each owner has queued there, and when its slots free. Before, each page read every queued and every
running job of its nodes (15,000 rows at a million jobs). Now:

- ``job_counts.seconds``: the expected runtime summed beside each count, kept by the same triggers, so a
  node's queue is summed from a few rows (the triggers also fire on an ``expected_runtime`` change);
- ``ix_jobs_active_end`` (partial: starting and running jobs only): by node, ordered by when each is
  expected to end, so a node's next free slots are its first ``slots`` entries;
- ``ix_jobs_node_state_owner``: an owner's queue on a node in queue order, so the jobs of that owner
  ahead of one are an index-only range count (the node's index made each walked entry a row read);
- ``ix_job_counts_node_state``: a node's queued counts per owner without a scan of the counts.
"""

# ruff: noqa: S608 - the SQL here is fixed text built from constants, nothing from outside

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (owner, node) of the four rows a job counts in, over a row called ``{r}`` (as 0005)
_PAIRS = [
    ("{r}.owner", "coalesce({r}.node, '')"),
    ("{r}.owner", "'*'"),
    ("'*'", "coalesce({r}.node, '')"),
    ("'*'", "'*'"),
]
_KEYS = ", ".join(f"({owner}, {node})" for owner, node in _PAIRS)
_SEC = "coalesce({r}.expected_runtime, 0.0)"
_ONES = ", ".join(f"({o}, {n}, NEW.state, 1, {_SEC})" for o, n in _PAIRS).format(r="NEW")
_MATCH = "owner IN ({r}.owner, '*') AND node IN (coalesce({r}.node, ''), '*') AND state = {r}.state"
_CHANGED = (
    "OLD.owner IS NOT NEW.owner OR OLD.node IS NOT NEW.node OR OLD.state IS NOT NEW.state "
    "OR OLD.expected_runtime IS NOT NEW.expected_runtime"
)
_UPSERT = (
    "ON CONFLICT (owner, node, state) DO UPDATE SET n = {t}n + {x}, seconds = coalesce({t}seconds, 0) + {s}"
)

_SQLITE = [
    "DROP TRIGGER jobs_count_insert",
    "DROP TRIGGER jobs_count_delete",
    "DROP TRIGGER jobs_count_update",
    f"""
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (owner, node, state, n, seconds) VALUES {_ONES}
        {_UPSERT.format(t="", x="1", s="excluded.seconds")};
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1, seconds = coalesce(seconds, 0) - {_SEC.format(r="OLD")}
        WHERE {_MATCH.format(r="OLD")};
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF owner, node, state, expected_runtime ON jobs
    WHEN {_CHANGED}
    BEGIN
        UPDATE job_counts SET n = n - 1, seconds = coalesce(seconds, 0) - {_SEC.format(r="OLD")}
        WHERE {_MATCH.format(r="OLD")};
        INSERT INTO job_counts (owner, node, state, n, seconds) VALUES {_ONES}
        {_UPSERT.format(t="", x="1", s="excluded.seconds")};
    END
    """,
]

_PG = [
    f"""
    CREATE OR REPLACE FUNCTION jobwire_count_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO job_counts (owner, node, state, n, seconds)
        SELECT k.owner, k.node, j.state, count(*), sum({_SEC.format(r="j")})
        FROM new_jobs j, LATERAL (VALUES {_KEYS.format(r="j")}) AS k(owner, node)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        {_UPSERT.format(t="job_counts.", x="EXCLUDED.n", s="EXCLUDED.seconds")};
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION jobwire_count_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE job_counts c SET n = c.n - d.n, seconds = coalesce(c.seconds, 0) - d.seconds
        FROM (
            SELECT k.owner, k.node, j.state, count(*) AS n, sum({_SEC.format(r="j")}) AS seconds
            FROM old_jobs j, LATERAL (VALUES {_KEYS.format(r="j")}) AS k(owner, node)
            GROUP BY 1, 2, 3
        ) d
        WHERE c.owner = d.owner AND c.node = d.node AND c.state = d.state;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION jobwire_count_updated_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE job_counts SET n = n - 1, seconds = coalesce(seconds, 0) - {_SEC.format(r="OLD")}
        WHERE {_MATCH.format(r="OLD")};
        INSERT INTO job_counts (owner, node, state, n, seconds)
        SELECT k.owner, k.node, NEW.state, 1, {_SEC.format(r="NEW")}
        FROM (VALUES {_KEYS.format(r="NEW")}) AS k(owner, node)
        ORDER BY 1, 2
        {_UPSERT.format(t="job_counts.", x="1", s="EXCLUDED.seconds")};
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER jobs_count_update ON jobs",
    f"""
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF owner, node, state, expected_runtime ON jobs
    FOR EACH ROW WHEN ({_CHANGED.replace("IS NOT", "IS DISTINCT FROM")})
    EXECUTE FUNCTION jobwire_count_updated_job()
    """,
]

#: the seconds of every row of ``job_counts`` from the jobs stored (the four kinds of row in one pass each)
_BACKFILL = """
    UPDATE job_counts SET seconds = t.seconds FROM (
        SELECT owner, coalesce(node, '') AS node, state, sum(coalesce(expected_runtime, 0.0)) AS seconds
        FROM jobs GROUP BY 1, 2, 3
        UNION ALL SELECT owner, '*', state, sum(coalesce(expected_runtime, 0.0)) FROM jobs GROUP BY 1, 3
        UNION ALL SELECT '*', coalesce(node, ''), state, sum(coalesce(expected_runtime, 0.0))
        FROM jobs GROUP BY 2, 3
        UNION ALL SELECT '*', '*', state, sum(coalesce(expected_runtime, 0.0)) FROM jobs GROUP BY 3
    ) t
    WHERE job_counts.owner = t.owner AND job_counts.node = t.node AND job_counts.state = t.state
"""

#: when a starting or running job should end: its start (or dispatch) plus its expected runtime. The
#: same expression in the index and in ``estimates`` (a planner uses an expression index only for it).
END_SQLITE = "julianday(coalesce(started_at, dispatched_at)) * 86400.0 + coalesce(expected_runtime, 0.0)"
END_PG = "coalesce(started_at, dispatched_at) + coalesce(expected_runtime, 0.0) * interval '1 second'"
ACTIVE = "state IN ('running', 'starting')"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("job_counts", sa.Column("seconds", sa.Float(), nullable=True))
    op.execute(_BACKFILL)
    for statement in _PG if postgres else _SQLITE:
        op.execute(statement)
    op.create_index("ix_job_counts_node_state", "job_counts", ["node", "state", "owner"])
    op.create_index("ix_jobs_node_state_owner", "jobs", ["node", "state", "owner", "priority", "id"])
    end = END_PG if postgres else END_SQLITE
    op.execute(f"CREATE INDEX ix_jobs_active_end ON jobs (node, ({end})) WHERE {ACTIVE}")


def _load(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"jobwire_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_jobs_active_end", table_name="jobs")
    op.drop_index("ix_jobs_node_state_owner", table_name="jobs")
    op.drop_index("ix_job_counts_node_state", table_name="job_counts")
    m0003, m0005 = _load("0003_read_path.py"), _load("0005_count_rollups.py")
    if postgres:
        op.execute("DROP TRIGGER jobs_count_update ON jobs")
        op.execute(m0003._PG_TRIGGERS[-1])  # 0003's update trigger (0005 only replaced the functions)
        statements = m0005._PG
    else:
        statements = m0005._SQLITE
    for statement in statements:
        op.execute(statement)
    # plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the count triggers
    op.drop_column("job_counts", "seconds")
