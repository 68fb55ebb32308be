"""ASGI middleware writing one audit row per state-changing request (any method but GET/HEAD/OPTIONS).

The row is committed when the response starts, so it is in the database before the client hears back;
refused requests (401, 403, 429, ...) are recorded too, with whoever could be authenticated.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from jobwire.store import audit
from jobwire.store.models import now

from ..resources import STATE_KEY, Resources
from .principal import maybe_principal

log = logging.getLogger(__name__)
READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: a handler sets this in the scope to name what it acted on when the path does not (a new job's id)
TARGET_KEY = "jobwire.audit_target"
WRITER_KEY = "jobwire.audit_writer"


def set_target(scope: Any, target: str) -> None:
    scope[TARGET_KEY] = target


def _action(scope: Any) -> str:
    handler = scope.get("route_handler")
    action = handler.opt.get("action") if handler is not None else None
    return str(action or f"{scope['method'].lower()} {scope.get('path_template', scope['path'])}")


def _target(scope: Any) -> str | None:
    if scope.get(TARGET_KEY):
        return str(scope[TARGET_KEY])
    params = scope.get("path_params") or {}
    for key in ("job_id", "name", "token_id", "owner"):
        if params.get(key):
            return str(params[key])
    return None


class GroupCommit:
    """Audit rows of concurrent requests committed together.

    Each request still waits until its own row is committed, but requests arriving while a commit
    runs share the next one: a burst of submits takes the database (on SQLite, its one write lock)
    once per batch instead of once per request.
    """

    def __init__(self, res: Resources) -> None:
        self.res = res
        self.pending: list[tuple[audit.NewEntry, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def write(self, entry: audit.NewEntry) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((entry, done))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain(), name="audit group commit")
        await asyncio.shield(done)  # a client that hangs up does not take its row with it

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                async with self.res.writing() as session:
                    await audit.record(session, *(entry for entry, _ in batch))
            except Exception as e:
                for _, done in batch:
                    done.set_exception(e)
            else:
                for _, done in batch:
                    done.set_result(None)


def _writer(scope: Any) -> GroupCommit:
    state = scope["app"].state
    res: Resources = state[STATE_KEY]
    writer: GroupCommit | None = state.get(WRITER_KEY)
    if writer is None or writer.res is not res:  # one per lifespan: the connections are per lifespan
        writer = state[WRITER_KEY] = GroupCommit(res)
    return writer


async def _record(scope: Any, status: int) -> None:
    principal = maybe_principal(scope)
    client = scope.get("client")
    entry = audit.NewEntry(
        actor=principal.owner if principal else None,
        token_id=principal.token_id if principal else None,
        action=_action(scope),
        method=scope["method"],
        path=scope["path"],
        status=status,
        target=_target(scope),
        address=client[0] if client else None,
        at=now(),
    )
    try:
        await _writer(scope).write(entry)
    except Exception:
        log.exception("could not write the audit row for %s %s", scope["method"], scope["path"])


def audit_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        s: Any = scope
        if s["type"] != "http" or s["method"] in READS:
            await app(scope, receive, send)
            return

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                await _record(s, int(message["status"]))
            await send(message)

        await app(scope, receive, send_recorded)

    return middleware
