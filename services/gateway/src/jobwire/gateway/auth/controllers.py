"""Admin-only REST for tokens (``/v1/tokens``), quotas (``/v1/quotas``) and the audit log (``/v1/audit``)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import FromQuery, PathParameter, QueryParameter

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store import audit, quotas, tokens
from jobwire.store.models import now

from ..params import MAX_INT32, Caller, Res
from ..problems import InvalidBody, NotFound
from ..strictbody import json_body
from . import audit as recording

ADMIN_OPT = {"scope": tokens.ADMIN}
#: an owner a token is made for over the API: a name as jobs, nodes and templates have (the store's
#: CLI still takes any 1 to 128 printable characters); a stated rule, so the OpenAPI schema can say it
OWNER_NAME = r"^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}$(?!\n)"


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What ``POST /v1/tokens`` takes: the owner, and optionally days, scopes, admin and a note."""

    owner: Annotated[str, msgspec.Meta(pattern=OWNER_NAME)]
    days: Annotated[float, msgspec.Meta(gt=0, le=3650)] | None = None
    #: any of ``tokens.SCOPES`` (an unknown one is a 422)
    scopes: list[str] | None = None
    admin: bool = False
    note: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class TokenList(msgspec.Struct, kw_only=True):
    items: list[tokens.TokenInfo]


class QuotaList(msgspec.Struct, kw_only=True):
    items: list[quotas.Quota]


class QuotaLimits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_active: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT32)] | None = None
    max_per_minute: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT32)] | None = None
    max_gpus: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT32)] | None = None
    #: fair-share weight against other owners (2: twice the capacity of an owner with 1 when both wait)
    share: Annotated[float, msgspec.Meta(gt=0, le=10000)] | None = None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[audit.AuditEntry]
    #: pass as ``before`` for the next (older) page
    next_before: int | None = None


class TokenNotFound(NotFound):
    slug, title = "token-not-found", "Token not found"


class TokenController(Controller):
    path = "/v1/tokens"
    tags = ["admin"]

    @post("/", status_code=201, opt={**ADMIN_OPT, "action": "tokens.create"}, summary="Create a token")
    async def create(
        self, request: Request[Any, Any, Any], res: Res, caller: Caller
    ) -> Response[tokens.NewToken]:
        """The secret is in this response only; the database keeps its hash. 201 once the scheduler
        stored the token, 202 when it is only queued (it works once the scheduler is back)."""
        data = await json_body(request, TokenRequest)
        scopes = list(data.scopes if data.scopes is not None else tokens.USER_SCOPES)
        if data.admin:
            scopes.append(tokens.ADMIN)
        try:
            secret, record = tokens.mint(
                data.owner, scopes=scopes, days=data.days, note=data.note, created_by=caller.owner
            )
        except ValueError as e:
            raise InvalidBody(str(e)) from None
        recording.set_target(request.scope, record.id)
        await res.bus.publish(sj.cmd_subject("token_create"), v1.CreateToken(token=record), msg_id=record.id)
        stored = await res.tokens.wait_for(record.id, lambda _: True, res.settings.accept_timeout)
        body = tokens.NewToken(secret=secret, token=tokens.info_of(stored or record))
        return Response(body, status_code=201 if stored is not None else 202)

    @get("/", opt=ADMIN_OPT, summary="Tokens, without their secrets")
    async def list(self, res: Res, owner: FromQuery[str | None] = None) -> TokenList:
        async with res.session() as session:
            return TokenList(items=await tokens.list_tokens(session, owner=owner))

    @delete(
        "/{token_id:str}",
        status_code=200,
        opt={**ADMIN_OPT, "action": "tokens.revoke"},
        summary="Revoke a token at once",
    )
    async def revoke(
        self, res: Res, token_id: Annotated[str, PathParameter(max_length=32)]
    ) -> Response[tokens.TokenInfo]:
        """200 once the scheduler stored the revocation (every gateway refuses the token within a second
        after); 202 when it is only queued, though this gateway refuses the token at once either way."""
        known = res.tokens.get(token_id)
        if known is None:
            async with res.session() as session:
                known = await tokens.find_record(session, token_id=token_id)
        if known is None:
            raise TokenNotFound(f"there is no token {token_id!r}")
        if known.revoked_at is not None:
            return Response(tokens.info_of(known), status_code=200)
        at = now()
        await res.bus.publish(
            sj.cmd_subject("token_revoke"),
            v1.RevokeToken(token_id=token_id, at=at),
            msg_id=f"{token_id}:revoke",
        )
        stored = await res.tokens.wait_for(
            token_id, lambda r: r.revoked_at is not None, res.settings.wait_timeout
        )
        if stored is None:  # queued: refused here at once, everywhere once the scheduler applies it
            res.tokens.put(msgspec.structs.replace(known, revoked_at=at))
            return Response(tokens.info_of(res.tokens.get(token_id) or known), status_code=202)
        return Response(tokens.info_of(stored), status_code=200)


class QuotaController(Controller):
    path = "/v1/quotas"
    tags = ["admin"]

    @get("/", opt=ADMIN_OPT, summary="Quotas per owner (`*` = the defaults)")
    async def list(self, res: Res) -> QuotaList:
        return QuotaList(items=await quotas.get_quotas(res.engine))

    @put("/{owner:str}", opt={**ADMIN_OPT, "action": "quotas.set"}, summary="Set an owner's quota")
    async def set(
        self, request: Request[Any, Any, Any], res: Res, owner: Annotated[str, PathParameter(max_length=128)]
    ) -> quotas.Quota:
        data = await json_body(request, QuotaLimits)
        quota = await quotas.set_quota(res.engine, quotas.Quota(owner=owner, **msgspec.structs.asdict(data)))
        res.admissions.limits.stored(quota)  # the next submit here is held to it; other replicas within 1 s
        return quota

    @delete("/{owner:str}", status_code=204, opt={**ADMIN_OPT, "action": "quotas.delete"})
    async def remove(self, res: Res, owner: Annotated[str, PathParameter(max_length=128)]) -> Response[None]:
        if not await quotas.delete_quota(res.engine, owner):
            raise NotFound(f"no quota for {owner!r}")
        res.admissions.limits.deleted(owner)
        return Response(None, status_code=204)


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["admin"]

    @get("/", opt=ADMIN_OPT, summary="The audit log, newest first")
    async def list(
        self,
        res: Res,
        actor: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        before: Annotated[int | None, QueryParameter(ge=1, le=MAX_INT32)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        async with res.session() as session:
            items = await audit.list_entries(session, actor=actor, action=action, before=before, limit=limit)
        return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
