"""Admin-only REST for tokens (``/v1/tokens``), quotas (``/v1/quotas``) and the audit log (``/v1/audit``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from jobwire.store import audit, quotas, tokens

from ..params import Caller, Res
from ..problems import InvalidBody, NotFound

ADMIN_OPT = {"scope": tokens.ADMIN}


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What ``POST /v1/tokens`` takes: the owner, and optionally days, scopes, admin and a note."""

    owner: str
    days: Annotated[float, msgspec.Meta(gt=0, le=3650)] | None = None
    scopes: list[str] | None = None
    admin: bool = False
    note: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class TokenList(msgspec.Struct, kw_only=True):
    items: list[tokens.TokenInfo]


class QuotaList(msgspec.Struct, kw_only=True):
    items: list[quotas.Quota]


class QuotaLimits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_active: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_per_minute: Annotated[int, msgspec.Meta(ge=0)] | None = None
    max_gpus: Annotated[int, msgspec.Meta(ge=0)] | None = None


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
    async def create(self, res: Res, caller: Caller, data: JSONBody[TokenRequest]) -> tokens.NewToken:
        """The secret is in this response only; the database keeps its hash."""
        scopes = list(data.scopes if data.scopes is not None else tokens.USER_SCOPES)
        if data.admin:
            scopes.append(tokens.ADMIN)
        try:
            async with res.writing() as session:
                return await tokens.create_token(
                    session,
                    data.owner,
                    scopes=scopes,
                    days=data.days,
                    note=data.note,
                    created_by=caller.owner,
                )
        except ValueError as e:
            raise InvalidBody(str(e)) from None

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
    ) -> tokens.TokenInfo:
        async with res.writing() as session:
            info = await tokens.revoke_token(session, token_id)
        if info is None:
            raise TokenNotFound(f"there is no token {token_id!r}")
        return info


class QuotaController(Controller):
    path = "/v1/quotas"
    tags = ["admin"]

    @get("/", opt=ADMIN_OPT, summary="Quotas per owner (`*` = the defaults)")
    async def list(self, res: Res) -> QuotaList:
        return QuotaList(items=await quotas.get_quotas(res.engine))

    @put("/{owner:str}", opt={**ADMIN_OPT, "action": "quotas.set"}, summary="Set an owner's quota")
    async def set(
        self, res: Res, owner: Annotated[str, PathParameter(max_length=128)], data: JSONBody[QuotaLimits]
    ) -> quotas.Quota:
        quota = quotas.Quota(owner=owner, **msgspec.structs.asdict(data))
        return await quotas.set_quota(res.engine, quota)

    @delete("/{owner:str}", status_code=204, opt={**ADMIN_OPT, "action": "quotas.delete"})
    async def remove(self, res: Res, owner: Annotated[str, PathParameter(max_length=128)]) -> Response[None]:
        if not await quotas.delete_quota(res.engine, owner):
            raise NotFound(f"no quota for {owner!r}")
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
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        async with res.session() as session:
            items = await audit.list_entries(session, actor=actor, action=action, before=before, limit=limit)
        return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
