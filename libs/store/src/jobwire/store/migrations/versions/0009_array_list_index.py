"""An array's tasks listed newest first (``GET /v1/jobs?array=``) by an index ending in the id (issue 15).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

``ix_jobs_array_id_index`` keeps index order for the array's own page; a list pages by id, and without
this index every task of the array would be read and sorted for each page.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_array_id_id", "jobs", ["array_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_array_id_id", table_name="jobs")
