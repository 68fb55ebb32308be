"""A gang job's ranks' nodes, kept with the job (issue 14).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

``jobs.gang`` holds the current attempt's nodes in rank order and the ranks that ended well, so a
restarted scheduler rebuilds every rank's slot and still takes each rank's reports as the job's.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("gang", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35+): a batch copy of ``jobs`` would drop 0003/0005's count triggers
    op.drop_column("jobs", "gang")
