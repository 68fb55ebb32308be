"""Turning an ``Authorization`` header into a :class:`Principal`, and refusing to run without a source.

Tokens are looked up by their hash in the gateway's memory (``tokens.TokenMemory``, kept current over NATS,
so a revocation acts within a second everywhere); shared keys come from the settings and are compared by
hash in constant time. Nothing is written: last uses go to the scheduler in batches.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from pathlib import Path

from jobwire.contracts import v1
from jobwire.store import tokens
from jobwire.store.models import now

from ..problems import Unauthorized
from ..resources import Resources
from ..settings import GatewaySettings
from .principal import ANONYMOUS, EVERYTHING, Principal

log = logging.getLogger(__name__)
TEAM = "team"
AUTH_MODES = ("tokens", "off")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def shared_keys(settings: GatewaySettings) -> list[tuple[str, bytes]]:
    """(owner, sha256 of the key) for the configured shared keys; the keys themselves are not kept."""
    keys: list[tuple[str, bytes]] = []
    if settings.api_key is not None and not settings.api_key.strip():
        # a blank key would look like a credential source while nobody can ever send it
        raise ValueError("JOBWIRE_GATEWAY_API_KEY is set but blank: give a key, or leave it unset")
    if settings.api_key:
        keys.append((TEAM, _digest(settings.api_key.strip())))
    if settings.api_keys_file:
        for n, line in enumerate(Path(settings.api_keys_file).read_text().splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) > 2:
                raise ValueError(f"{settings.api_keys_file}:{n}: expected `KEY` or `OWNER KEY`")
            owner, key = (TEAM, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
            keys.append((owner, _digest(key)))
    for _, digest in keys:
        if len(digest) != 32:  # pragma: no cover - sha256 is 32 bytes
            raise ValueError("bad key")
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_mode(settings: GatewaySettings) -> None:
    """Auth off is allowed only where nobody else can connect; anything else is a start-up error."""
    if settings.auth not in AUTH_MODES:
        raise ValueError(
            f"JOBWIRE_GATEWAY_AUTH must be one of {', '.join(AUTH_MODES)}, not {settings.auth!r}"
        )
    if settings.auth == "off" and not is_loopback(settings.host):
        raise ValueError(
            f"JOBWIRE_GATEWAY_AUTH=off is refused when listening on {settings.host}: "
            "turn auth off only on a loopback address (127.0.0.1, ::1)"
        )


async def check_sources(res: Resources, keys: list[tuple[str, bytes]]) -> None:
    """Refuse to start when no one could ever authenticate (no silent bypass, no locked-out gateway)."""
    if res.settings.auth == "off":
        log.warning("authentication is OFF: every caller is an anonymous admin (loopback only)")
        return
    if keys:
        return
    async with res.session() as session:
        if await tokens.has_usable_token(session):
            return
    raise RuntimeError(
        "no credential source: create a token (`python -m jobwire.store token create NAME --admin`), "
        "or set JOBWIRE_GATEWAY_API_KEY / JOBWIRE_GATEWAY_API_KEYS_FILE, "
        "or set JOBWIRE_GATEWAY_AUTH=off on a loopback address"
    )


def _bearer(header: str | None) -> str:
    if not header:
        raise Unauthorized("send `Authorization: Bearer <token>`")
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("the Authorization header must be `Bearer <token>`")
    return credential.strip()


async def authenticate(res: Resources, keys: list[tuple[str, bytes]], header: str | None) -> Principal:
    """The caller, or an :class:`Unauthorized` problem that never repeats the credential."""
    if res.settings.auth == "off":
        return ANONYMOUS
    secret = _bearer(header)
    if keys:
        digest = _digest(secret)
        owner = None
        for key_owner, key_digest in keys:  # every key is compared: timing says nothing of which matched
            if hmac.compare_digest(digest, key_digest):
                owner = key_owner
        if owner is not None:
            return Principal(owner=owner, scopes=EVERYTHING)
    record = await res.tokens.find(secret)
    if record is None:
        raise Unauthorized("the token is not valid")
    if record.revoked_at is not None:
        raise Unauthorized(f"token {record.id} was revoked")
    if record.expires_at is not None and record.expires_at <= now():
        raise Unauthorized(f"token {record.id} expired")
    res.tokens.used(record.id)
    return _principal(record)


#: token id -> (the record it was made from, its Principal): a request with a known token builds nothing;
#: a record replaced in TokenMemory (revoked, reloaded) is a new object, so its entry is made again
_PRINCIPALS: dict[str, tuple[v1.TokenRecord, Principal]] = {}
_PRINCIPALS_MAX = 10_000


def _principal(record: v1.TokenRecord) -> Principal:
    cached = _PRINCIPALS.get(record.id)
    if cached is not None and cached[0] is record:
        return cached[1]
    if len(_PRINCIPALS) >= _PRINCIPALS_MAX:
        _PRINCIPALS.clear()
    principal = Principal(owner=record.owner, scopes=frozenset(record.scopes), token_id=record.id)
    _PRINCIPALS[record.id] = (record, principal)
    return principal
