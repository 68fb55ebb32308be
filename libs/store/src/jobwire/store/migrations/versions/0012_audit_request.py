"""One audit row per submit, whether its record came with the submit command or after it (issue 11).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

A submit's audit record travels in its ``SubmitJob`` command and is written with the job (one message
per submit instead of two). When the gateway answers otherwise than 201 (202 after its wait, an error),
it sends the record with the real status too. ``audit_log.request`` (the job id) names the row both
records are for, and its unique index lets either arrive first: the command's inserts only where no row
is, the gateway's inserts or corrects the status. NULL for every other request (a unique index allows
many NULLs on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("request", sa.String(64), nullable=True))
    op.create_index("ux_audit_log_request", "audit_log", ["request"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_audit_log_request", table_name="audit_log")
    op.drop_column("audit_log", "request")
