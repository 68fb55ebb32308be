"""Job arrays as one row until their tasks are scheduled; retries' backoff; each attempt's exit code.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

``arrays`` holds an array's spec once with a counter of the tasks made into jobs so far
(``materialised``): 100,000 tasks are one insert, and the scheduler adds task rows to ``jobs`` (with
``array_id``, ``array_index``) only as capacity and the array's parallelism allow. ``jobs.not_before``
keeps a retry's backoff across a scheduler restart. ``job_transitions`` gains the node and exit code
of the attempt a transition ends, so every attempt of a job shows how it went.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "arrays",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("spec", sa.LargeBinary(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("parallelism", sa.Integer(), nullable=True),
        sa.Column("materialised", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_arrays_owner_id", "arrays", ["owner", "id"])
    op.add_column("jobs", sa.Column("array_id", sa.String(36), nullable=True))
    op.add_column("jobs", sa.Column("array_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("not_before", sa.DateTime(), nullable=True))
    op.create_index("ix_jobs_array_id_index", "jobs", ["array_id", "array_index"])
    op.create_index("ix_jobs_array_id_state", "jobs", ["array_id", "state"])
    op.add_column("job_transitions", sa.Column("node", sa.String(128), nullable=True))
    op.add_column("job_transitions", sa.Column("exit_code", sa.Integer(), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35+): a batch copy of ``jobs`` would drop 0003/0005's count triggers
    op.drop_column("job_transitions", "exit_code")
    op.drop_column("job_transitions", "node")
    op.drop_index("ix_jobs_array_id_state", table_name="jobs")
    op.drop_index("ix_jobs_array_id_index", table_name="jobs")
    for column in ("not_before", "array_index", "array_id"):
        op.drop_column("jobs", column)
    op.drop_index("ix_arrays_owner_id", table_name="arrays")
    op.drop_table("arrays")
