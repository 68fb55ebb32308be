"""Access bookkeeping on the bus: audit records, token changes and token uses, applied by the scheduler.

The gateway writes nothing to the job database while it serves a request: what it has to record goes to
``JOBWIRE_CMD`` as one of these commands, and the scheduler (the one writer) applies it in its next batch.
Token records also travel in the token bucket (``subjects.TOKEN_BUCKET``), which every gateway replica
watches; they carry the secret's SHA-256, never the secret.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class AuditRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One state-changing request, as answered at ``at``."""

    at: datetime
    action: str
    method: str
    path: str
    status: int
    actor: str | None = None
    target: str | None = None
    address: str | None = None
    token_id: str | None = None
    #: the request's own key where its record may be sent twice: a submit's job id. The submit command
    #: carries the record (status 201) and the gateway sends one with the status it really answered only
    #: when that differs (202 after the wait, an error); both name the same row, and the sent one wins.
    request: str | None = None


class TokenRecord(msgspec.Struct, kw_only=True):
    """A token as stored: everything but the secret, plus the secret's SHA-256 (hex)."""

    id: str
    owner: str
    secret_hash: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_by: str | None = None
    note: str | None = None


class RecordAudit(msgspec.Struct, kw_only=True, tag="audit", tag_field="type"):
    """Audit records of requests answered together (one message per gateway batch)."""

    records: list[AuditRecord]


class CreateToken(msgspec.Struct, kw_only=True, tag="token_create", tag_field="type"):
    """Store this token; idempotent by id. The gateway showed the secret to nobody yet."""

    token: TokenRecord


class RevokeToken(msgspec.Struct, kw_only=True, tag="token_revoke", tag_field="type"):
    """Revoke at ``at`` (a token revoked twice keeps its first time)."""

    token_id: str
    at: datetime


class TouchTokens(msgspec.Struct, kw_only=True, tag="token_touch", tag_field="type"):
    """Last uses seen by one gateway since its previous message: token id -> time of the last use."""

    uses: dict[str, datetime]


AccessCommand = RecordAudit | CreateToken | RevokeToken | TouchTokens
