"""Counts read a handful of rows whatever the number of owners and nodes: rollup rows in ``job_counts``.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-05

0003 kept one row per (owner, node, state), so the overall counts summed owners x nodes x states rows
(8,500 at a site of 50 users on 17 nodes; far more at a bigger one). Now the triggers also keep
(owner, '*', state), ('*', node, state) and ('*', '*', state): every count the API serves (overall, per
owner, per node, per owner on a node) is a primary-key lookup of at most one row per state. '*' is not
an owner (the quotas table already reserves it for the defaults) and '' stays "on no node". The exact
rows come first in every statement, so concurrent writers would take row locks in one order; there is
one writer (the scheduler) anyway. (0004 is reserved for the gateway's write-path migration.)
"""

# ruff: noqa: S608 - the SQL here is fixed text built from constants, nothing from outside

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the four rows a job counts in, as (owner, node) expressions over a row called ``{r}``
_PAIRS = [
    ("{r}.owner", "coalesce({r}.node, '')"),
    ("{r}.owner", "'*'"),
    ("'*'", "coalesce({r}.node, '')"),
    ("'*'", "'*'"),
]
_KEYS = ", ".join(f"({owner}, {node})" for owner, node in _PAIRS)
#: SQLite: the four rows of a NEW job, each counting 1
_ONES = ", ".join(f"({owner}, {node}, NEW.state, 1)" for owner, node in _PAIRS).format(r="NEW")
_MATCH = "owner IN ({r}.owner, '*') AND node IN (coalesce({r}.node, ''), '*') AND state = {r}.state"

_SQLITE = [
    "DROP TRIGGER jobs_count_insert",
    "DROP TRIGGER jobs_count_delete",
    "DROP TRIGGER jobs_count_update",
    f"""
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (owner, node, state, n) VALUES {_ONES}
        ON CONFLICT (owner, node, state) DO UPDATE SET n = n + 1;
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1 WHERE {_MATCH.format(r="OLD")};
    END
    """,
    f"""
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF owner, node, state ON jobs
    WHEN OLD.owner IS NOT NEW.owner OR OLD.node IS NOT NEW.node OR OLD.state IS NOT NEW.state
    BEGIN
        UPDATE job_counts SET n = n - 1 WHERE {_MATCH.format(r="OLD")};
        INSERT INTO job_counts (owner, node, state, n) VALUES {_ONES}
        ON CONFLICT (owner, node, state) DO UPDATE SET n = n + 1;
    END
    """,
]

_PG = [
    f"""
    CREATE OR REPLACE FUNCTION jobwire_count_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO job_counts (owner, node, state, n)
        SELECT k.owner, k.node, j.state, count(*)
        FROM new_jobs j, LATERAL (VALUES {_KEYS.format(r="j")}) AS k(owner, node)
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (owner, node, state) DO UPDATE SET n = job_counts.n + EXCLUDED.n;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION jobwire_count_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE job_counts c SET n = c.n - d.n
        FROM (
            SELECT k.owner, k.node, j.state, count(*) AS n
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
        UPDATE job_counts SET n = n - 1 WHERE {_MATCH.format(r="OLD")};
        INSERT INTO job_counts (owner, node, state, n)
        SELECT k.owner, k.node, NEW.state, 1 FROM (VALUES {_KEYS.format(r="NEW")}) AS k(owner, node)
        ORDER BY 1, 2
        ON CONFLICT (owner, node, state) DO UPDATE SET n = job_counts.n + 1;
        RETURN NULL;
    END $$
    """,
]

#: the rollups of the exact rows (those with neither owner nor node '*'), computed before any is added
_BACKFILL = """
    INSERT INTO job_counts (owner, node, state, n)
    SELECT owner, node, state, sum(n) FROM (
        SELECT owner, '*' AS node, state, n FROM job_counts
        UNION ALL SELECT '*', node, state, n FROM job_counts
        UNION ALL SELECT '*', '*', state, n FROM job_counts
    ) rolled WHERE true GROUP BY owner, node, state
"""


def upgrade() -> None:
    op.drop_index("ix_job_counts_node", table_name="job_counts")  # node lookups now go by ('*', node)
    op.execute(_BACKFILL)
    for statement in _PG if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DELETE FROM job_counts WHERE owner = '*' OR node = '*'")
    op.create_index("ix_job_counts_node", "job_counts", ["node"])
    # 0003's triggers and functions, as 0003 wrote them
    path = Path(__file__).with_name("0003_read_path.py")
    spec = importlib.util.spec_from_file_location("jobwire_migration_0003", path)
    assert spec is not None and spec.loader is not None
    m0003 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m0003)
    if op.get_bind().dialect.name == "postgresql":
        for function in m0003._PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION {function}() CASCADE")  # and the triggers calling them
        statements = m0003._PG_TRIGGERS
    else:
        statements = [f"DROP TRIGGER {t}" for t in m0003._TRIGGERS] + m0003._SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)
