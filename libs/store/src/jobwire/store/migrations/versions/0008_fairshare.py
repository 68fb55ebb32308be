"""Fair share: a per-owner weight in ``quotas`` (issue 14).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``quotas.share`` weighs an owner against the others when the scheduler hands out free slots (NULL: the
``*`` row's share, else 1). It is not a limit, so the admission checks ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("quotas", sa.Column("share", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("quotas", "share")
