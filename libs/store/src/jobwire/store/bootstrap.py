"""The first credential: an admin token minted straight in the database, for the one who runs the stack.

A gateway refuses to start without a credential source, so someone must hold a token before any HTTP
call can create one; ``make run`` and ``python -m jobwire.store token create`` do it here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import URL

from . import tokens
from .engine import make_engine, session_factory


async def create(
    url: str | URL,
    owner: str,
    *,
    scopes: Iterable[str] = tokens.USER_SCOPES,
    days: float | None = None,
    note: str | None = None,
) -> tokens.NewToken:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await tokens.create_token(session, owner, scopes=scopes, days=days, note=note)
    finally:
        await engine.dispose()


async def usable(url: str | URL, secret: str) -> bool:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session:
            found = await tokens.find_token(session, secret)
        return found is not None and tokens.is_usable(found)
    finally:
        await engine.dispose()


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by its owner only (0600 from creation, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.replace(tmp, path)


def local_admin_token(url: str | URL, owner: str, path: Path) -> tuple[str, bool]:
    """The admin token in ``path`` when it still works here, else a new one written there.

    Returns the secret and whether it was created now (restarts reuse one token instead of piling up).
    Synchronous, for the stack launcher: it runs its own event loop.
    """
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if existing and asyncio.run(usable(url, existing)):
        return existing, False
    new = asyncio.run(create(url, owner, scopes=tokens.SCOPES, note="local admin (jobwire-stack)"))
    write_secret(path, new.secret)
    return new.secret, True
