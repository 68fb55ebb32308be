"""ASGI middleware recording one audit entry per state-changing request (any method but GET/HEAD/OPTIONS).

The record is stored in JetStream (``jobwire.cmd.audit``) when the response starts, so it is kept before
the client hears back; the scheduler writes it to the audit log in its next batch. Refused requests (401,
403, 429, ...) are recorded too, with whoever could be authenticated. A submit's record rides in its
``SubmitJob`` instead (stored in JetStream before the publish returns, written with the job), so a
submit costs one message, not two; it is sent here again only when the answer was not the 201 it says.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.models import now

from ..resources import STATE_KEY, Resources
from .principal import maybe_principal

log = logging.getLogger(__name__)
READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: a handler sets this in the scope to name what it acted on when the path does not (a new job's id)
TARGET_KEY = "jobwire.audit_target"
WRITER_KEY = "jobwire.audit_writer"
#: the job id of a submit whose command carried this request's record (see ``carried_record``)
CARRIED_KEY = "jobwire.audit_carried"
CARRIED_STATUS = 201


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
    """Audit records of concurrent requests sent together, as one ``RecordAudit`` command.

    Each request waits until its own record is stored in JetStream (the publish's ack), so it is never
    lost; requests arriving while a publish runs share the next one. The scheduler writes the rows in its
    next batch, so ``GET /v1/audit`` shows them a few milliseconds later.
    """

    def __init__(self, send: Callable[[list[v1.AuditRecord]], Awaitable[object]]) -> None:
        self.send = send
        self.pending: list[tuple[v1.AuditRecord, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def write(self, record: v1.AuditRecord) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((record, done))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain(), name="audit group send")
        await asyncio.shield(done)  # a client that hangs up does not take its record with it

    async def _drain(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await self.send([record for record, _ in batch])
            except Exception as e:
                for _, done in batch:
                    done.set_exception(e)
            else:
                for _, done in batch:
                    done.set_result(None)


def bus_sender(res: Resources) -> Callable[[list[v1.AuditRecord]], Awaitable[object]]:
    async def send(records: list[v1.AuditRecord]) -> object:
        # a unique id: a publish retried after a lost ack is stored once
        msg_id = f"audit:{uuid.uuid4().hex}"
        return await res.bus.publish(sj.cmd_subject("audit"), v1.RecordAudit(records=records), msg_id=msg_id)

    return send


def _writer(scope: Any) -> GroupCommit:
    state = scope["app"].state
    res: Resources = state[STATE_KEY]
    writer: GroupCommit | None = state.get(WRITER_KEY)
    if writer is None or state.get(WRITER_KEY + ".res") is not res:  # one per lifespan (its connection)
        writer = state[WRITER_KEY] = GroupCommit(bus_sender(res))
        state[WRITER_KEY + ".res"] = res
    return writer


def _entry(scope: Any, status: int, *, request: str | None = None) -> v1.AuditRecord:
    principal = maybe_principal(scope)
    client = scope.get("client")
    return v1.AuditRecord(
        actor=principal.owner if principal else None,
        token_id=principal.token_id if principal else None,
        action=_action(scope),
        method=scope["method"],
        path=scope["path"],
        status=status,
        target=_target(scope),
        address=client[0] if client else None,
        at=now(),
        request=request,
    )


def carried_record(scope: Any, job_id: str) -> v1.AuditRecord:
    """This submit's record as answered 201, for its ``SubmitJob`` to carry: the scheduler writes it with
    the job, and this request publishes no record of its own unless it is answered otherwise."""
    scope[CARRIED_KEY] = job_id
    set_target(scope, job_id)
    return _entry(scope, CARRIED_STATUS, request=job_id)


async def _record(scope: Any, status: int) -> None:
    carried: str | None = scope.get(CARRIED_KEY)
    if carried is not None and status == CARRIED_STATUS:
        return  # the submit command carried it, stored before the scheduler said the job was
    # a submit answered otherwise (202 after the wait, an error) names its row: its status wins
    entry = _entry(scope, status, request=carried)
    try:
        await _writer(scope).write(entry)
    except Exception:
        log.exception("could not record the audit entry for %s %s", scope["method"], scope["path"])


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
