"""Workflows: jobs submitted together with dependencies between them (issue 14).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Written out in full (no imports from ``models``), like 0001. The dependencies themselves live in each
job's spec (``after``); this table only remembers which jobs were submitted as one workflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("jobs", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workflows_owner_id", "workflows", ["owner", "id"])


def downgrade() -> None:
    op.drop_index("ix_workflows_owner_id", table_name="workflows")
    op.drop_table("workflows")
