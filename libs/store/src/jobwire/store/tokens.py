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
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def create_token(
    session: AsyncSession,
    owner: str,
    *,
    scopes: Iterable[str] = USER_SCOPES,
    days: float | None = None,
    note: str | None = None,
    created_by: str | None = None,
) -> NewToken:
    """Mint a token for ``owner`` (the caller commits). ``days=None`` never expires."""
    if not owner or len(owner) > 128 or not owner.isprintable():
        raise ValueError("owner must be 1 to 128 printable characters")
    if days is not None and days <= 0:
        raise ValueError("days must be positive")
    secret = PREFIX + secrets.token_urlsafe(32)
    created = now()
    row = TokenRow(
        id="tok_" + secrets.token_hex(8),
        owner=owner,
        secret_hash=hash_secret(secret),
        scopes=",".join(check_scopes(scopes)),
        note=note,
        created_by=created_by,
        created_at=created,
        expires_at=created + timedelta(days=days) if days is not None else None,
    )
    session.add(row)
    await session.flush()
    return NewToken(secret=secret, token=_info(row))


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
