"""API tokens: minted once, kept only as a SHA-256 hash, looked up by that hash.

The secret is ``jw_`` + 43 URL-safe characters (32 random bytes): recognisable by secret scanners, and
too long to guess, so one unsalted hash is enough and a database dump grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1

from .models import TokenRow, now

PREFIX = "jw_"
ADMIN = "admin"
#: reads GET /metrics (a monitoring system's token); nothing else
METRICS = "metrics:read"
#: Every scope a token may carry; ``admin`` implies all of them and sees every owner's jobs.
SCOPES = (
    "jobs:submit",
    "jobs:read",
    "jobs:cancel",
    "inputs:read",
    "inputs:write",
    "templates:write",
    METRICS,
    ADMIN,
)
#: What a token gets when no scopes are named: everything a user needs, nothing an admin or operator does.
USER_SCOPES = tuple(s for s in SCOPES if s not in (ADMIN, METRICS))


class TokenInfo(msgspec.Struct, kw_only=True):
    """A token as listed: everything but the secret."""

    id: str
    owner: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    created_by: str | None = None
    note: str | None = None


class NewToken(msgspec.Struct, kw_only=True):
    """A token just created: the only time its ``secret`` is shown."""

    secret: str
    token: TokenInfo


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_token(secret: str) -> bool:
    return secret.startswith(PREFIX) and 40 <= len(secret) <= 200 and secret.isascii()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, de-duplicated in canonical order; ValueError names any unknown one."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    return [s for s in SCOPES if s in wanted]


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        owner=row.owner,
        scopes=row.scopes.split(",") if row.scopes else [],
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        created_by=row.created_by,
        note=row.note,
    )


def record_of(row: TokenRow) -> v1.TokenRecord:
    """What the token bucket carries for ``row`` (the hash, never a secret)."""
    return v1.TokenRecord(
        id=row.id,
        owner=row.owner,
        secret_hash=row.secret_hash,
        scopes=row.scopes.split(",") if row.scopes else [],
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_by=row.created_by,
        note=row.note,
    )


def info_of(record: v1.TokenRecord, last_used_at: datetime | None = None) -> TokenInfo:
    return TokenInfo(
        id=record.id,
        owner=record.owner,
        scopes=list(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=last_used_at,
        revoked_at=record.revoked_at,
        created_by=record.created_by,
        note=record.note,
    )


def mint(
    owner: str,
    *,
    scopes: Iterable[str] = USER_SCOPES,
    days: float | None = None,
    note: str | None = None,
    created_by: str | None = None,
) -> tuple[str, v1.TokenRecord]:
    """A new secret and its record, stored nowhere yet; ValueError names what is wrong."""
    if not owner or len(owner) > 128 or not owner.isprintable():
        raise ValueError("owner must be 1 to 128 printable characters")
    if days is not None and days <= 0:
        raise ValueError("days must be positive")
    secret = PREFIX + secrets.token_urlsafe(32)
    created = now()
    record = v1.TokenRecord(
        id="tok_" + secrets.token_hex(8),
        owner=owner,
        secret_hash=hash_secret(secret),
        scopes=check_scopes(scopes),
        note=note,
        created_by=created_by,
        created_at=created,
        expires_at=created + timedelta(days=days) if days is not None else None,
    )
    return secret, record


async def load_records(session: AsyncSession) -> list[v1.TokenRecord]:
    """Every token, for a gateway's memory (revoked and expired ones too: they answer 401 by name)."""
    return [record_of(r) for r in (await session.execute(select(TokenRow))).scalars()]


async def find_record(
    session: AsyncSession, *, secret_hash: str | None = None, token_id: str | None = None
) -> v1.TokenRecord | None:
    query = select(TokenRow)
    query = (
        query.where(TokenRow.secret_hash == secret_hash)
        if secret_hash
        else query.where(TokenRow.id == token_id)
    )
    row = (await session.execute(query)).scalar_one_or_none()
    return None if row is None else record_of(row)


async def store_record(session: AsyncSession, record: v1.TokenRecord) -> v1.TokenRecord:
    """Insert ``record`` unless its id is stored already (a redelivered command); the stored one wins."""
    row = await session.get(TokenRow, record.id)
    if row is None:
        row = _row(record)
        session.add(row)
        await session.flush()
    return record_of(row)


def _row(record: v1.TokenRecord) -> TokenRow:
    return TokenRow(
        id=record.id,
        owner=record.owner,
        secret_hash=record.secret_hash,
        scopes=",".join(record.scopes),
        note=record.note,
        created_by=record.created_by,
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


async def revoke_at(session: AsyncSession, token_id: str, at: datetime) -> v1.TokenRecord | None:
    """Revoke at ``at`` unless revoked already (the first time stays); None if there is no such token."""
    await session.execute(
        update(TokenRow).where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None)).values(revoked_at=at)
    )
    row = await session.get(TokenRow, token_id, populate_existing=True)
    return None if row is None else record_of(row)


async def touch_many(session: AsyncSession, uses: dict[str, datetime]) -> None:
    """Record last uses in one statement, never moving a token's ``last_used_at`` back."""
    if not uses:
        return
    stmt = (
        update(TokenRow)
        .where(TokenRow.id == bindparam("tid"))
        .where(or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at < bindparam("at")))
        .values(last_used_at=bindparam("at"))
        .execution_options(synchronize_session=False)
    )
    conn = await session.connection()
    await conn.execute(stmt, [{"tid": tid, "at": at} for tid, at in uses.items()])


async def create_token(
    session: AsyncSession,
    owner: str,
    *,
    scopes: Iterable[str] = USER_SCOPES,
    days: float | None = None,
    note: str | None = None,
    created_by: str | None = None,
) -> NewToken:
    """Mint a token for ``owner`` and add it (the caller commits). ``days=None`` never expires."""
    secret, record = mint(owner, scopes=scopes, days=days, note=note, created_by=created_by)
    session.add(_row(record))  # no read first: a write-only transaction never fails a lock upgrade
    await session.flush()
    return NewToken(secret=secret, token=info_of(record))


async def find_token(session: AsyncSession, secret: str) -> TokenInfo | None:
    """The token with this secret (revoked or expired ones too: the caller says which), or None."""
    if not looks_like_token(secret):
        return None
    digest = hash_secret(secret)
    row = (await session.execute(select(TokenRow).where(TokenRow.secret_hash == digest))).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    return _info(row)


def is_usable(token: TokenInfo, at: datetime | None = None) -> bool:
    at = at or now()
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > at)


async def touch(session: AsyncSession, token_id: str, *, older_than: timedelta) -> None:
    """Record a use, at most once per ``older_than`` (a write per request would load the database)."""
    at = now()
    await session.execute(
        update(TokenRow)
        .where(TokenRow.id == token_id)
        .where(or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at < at - older_than))
        .values(last_used_at=at)
    )


async def list_tokens(session: AsyncSession, *, owner: str | None = None) -> list[TokenInfo]:
    query = select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
    if owner is not None:
        query = query.where(TokenRow.owner == owner)
    return [_info(r) for r in (await session.execute(query)).scalars()]


async def revoke_token(session: AsyncSession, token_id: str) -> TokenInfo | None:
    """Revoke at once (the caller commits); revoking twice keeps the first time. None if unknown."""
    row = await session.get(TokenRow, token_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = now()
    await session.flush()
    return _info(row)


async def has_usable_token(session: AsyncSession) -> bool:
    at = now()
    query = (
        select(TokenRow.id)
        .where(TokenRow.revoked_at.is_(None))
        .where(or_(TokenRow.expires_at.is_(None), TokenRow.expires_at > at))
        .limit(1)
    )
    return (await session.execute(query)).first() is not None
