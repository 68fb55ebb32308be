"""The read path at a million jobs: indexes that match every list filter, and counts kept by triggers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Lists page newest first (``ORDER BY id DESC``), so each filter gets an index ending in the id: a page is
then a seek and a short walk at any cursor depth, never a sort of every match. ``job_counts`` holds how
many jobs each (owner, node, state) has, kept by triggers in the same transaction as the job write, so
``/v1/jobs/counts`` reads a few rows instead of the whole table and the scheduler's Python write path is
untouched. Existing jobs are counted once here (the backfill). Written out in full, like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOB_INDEXES = {
    "ix_jobs_state_id": ["state", "id"],
    "ix_jobs_node_id": ["node", "id"],
    "ix_jobs_owner_state_id": ["owner", "state", "id"],
}

# SQLite: row triggers (it has no others). A node of NULL counts under '' (a primary key has no NULLs).
_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (owner, node, state, n)
        VALUES (NEW.owner, coalesce(NEW.node, ''), NEW.state, 1)
        ON CONFLICT (owner, node, state) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE owner = OLD.owner AND node = coalesce(OLD.node, '') AND state = OLD.state;
    END
    """,
    """
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF owner, node, state ON jobs
    WHEN OLD.owner IS NOT NEW.owner OR OLD.node IS NOT NEW.node OR OLD.state IS NOT NEW.state
    BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE owner = OLD.owner AND node = coalesce(OLD.node, '') AND state = OLD.state;
        INSERT INTO job_counts (owner, node, state, n)
        VALUES (NEW.owner, coalesce(NEW.node, ''), NEW.state, 1)
        ON CONFLICT (owner, node, state) DO UPDATE SET n = n + 1;
    END
    """,
]

# PostgreSQL: inserts and deletes are counted per statement from the transition table (one upsert per
# (owner, node, state) whatever the batch size); updates per row, and only when a counted column changed.
_PG_TRIGGERS = [
    """
    CREATE FUNCTION jobwire_count_inserted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO job_counts (owner, node, state, n)
        SELECT owner, coalesce(node, ''), state, count(*) FROM new_jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (owner, node, state) DO UPDATE SET n = job_counts.n + EXCLUDED.n;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION jobwire_count_deleted_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE job_counts c SET n = c.n - d.n
        FROM (SELECT owner, coalesce(node, '') AS node, state, count(*) AS n FROM old_jobs GROUP BY 1, 2, 3) d
        WHERE c.owner = d.owner AND c.node = d.node AND c.state = d.state;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION jobwire_count_updated_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE job_counts SET n = n - 1
        WHERE owner = OLD.owner AND node = coalesce(OLD.node, '') AND state = OLD.state;
        INSERT INTO job_counts (owner, node, state, n)
        VALUES (NEW.owner, coalesce(NEW.node, ''), NEW.state, 1)
        ON CONFLICT (owner, node, state) DO UPDATE SET n = job_counts.n + 1;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobwire_count_inserted_jobs()
    """,
    """
    CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobwire_count_deleted_jobs()
    """,
    """
    CREATE TRIGGER jobs_count_update AFTER UPDATE OF owner, node, state ON jobs FOR EACH ROW
    WHEN (OLD.owner IS DISTINCT FROM NEW.owner OR OLD.node IS DISTINCT FROM NEW.node
          OR OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION jobwire_count_updated_job()
    """,
]

_PG_FUNCTIONS = ("jobwire_count_inserted_jobs", "jobwire_count_deleted_jobs", "jobwire_count_updated_job")
_TRIGGERS = ("jobs_count_insert", "jobs_count_delete", "jobs_count_update")


def upgrade() -> None:
    op.drop_index("ix_jobs_state_node", table_name="jobs")
    for name, columns in _JOB_INDEXES.items():
        op.create_index(name, "jobs", columns)
    # (key, value, job_id): a label filter walks its jobs in id order instead of sorting them
    op.drop_index("ix_job_labels_key_value", table_name="job_labels")
    op.create_index("ix_job_labels_key_value_job_id", "job_labels", ["key", "value", "job_id"])

    op.create_table(
        "job_counts",
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "node", "state"),
    )
    op.create_index("ix_job_counts_node", "job_counts", ["node"])
    # The migration holds the write lock (BEGIN IMMEDIATE / the trigger DDL's table lock), so no job
    # write falls between the backfill and the triggers.
    op.execute(
        "INSERT INTO job_counts (owner, node, state, n) "
        "SELECT owner, coalesce(node, ''), state, count(*) FROM jobs "
        "GROUP BY owner, coalesce(node, ''), state"
    )
    for statement in _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON jobs" if postgres else ""))
    if postgres:
        for function in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_index("ix_job_counts_node", table_name="job_counts")
    op.drop_table("job_counts")
    op.drop_index("ix_job_labels_key_value_job_id", table_name="job_labels")
    op.create_index("ix_job_labels_key_value", "job_labels", ["key", "value"])
    for name in _JOB_INDEXES:
        op.drop_index(name, table_name="jobs")
    op.create_index("ix_jobs_state_node", "jobs", ["state", "node"])
