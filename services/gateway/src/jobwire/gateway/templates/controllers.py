"""HTTP for ``/v1/templates``: put, get, list (with ``prefix``) and delete named partial JobSpecs."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, put
from litestar.params import FromPath, FromQuery

from jobwire.store import templates

from ..params import Caller, Res
from ..problems import Forbidden
from .service import TemplateNotFound, check_name, validate_partial


class TemplateList(msgspec.Struct, kw_only=True):
    items: list[templates.Template]


class TemplateController(Controller):
    path = "/v1/templates"
    tags = ["templates"]

    @put(
        "/{name:str}",
        opt={"scope": "templates:write", "action": "templates.put"},
        summary="Store a partial JobSpec under a name; `POST /v1/jobs` with `template` starts from it",
    )
    async def put_template(
        self, request: Request[Any, Any, Any], res: Res, caller: Caller, name: FromPath[str]
    ) -> templates.Template:
        check_name(name)
        partial = validate_partial(await request.body())
        async with res.writing() as session:
            existing = await templates.get_template(session, name)
            if existing is not None and existing.owner != caller.owner and not caller.is_admin:
                raise Forbidden(
                    f"template {name!r} belongs to {existing.owner}; only they or an admin may change it"
                )
            return await templates.put_template(session, name, caller.owner, partial)

    @get("/", opt={"scope": "jobs:read"}, summary="Templates, by name")
    async def list_templates(self, res: Res, prefix: FromQuery[str] = "") -> TemplateList:
        async with res.session() as session:
            return TemplateList(items=await templates.list_templates(session, prefix=prefix))

    @get("/{name:str}", opt={"scope": "jobs:read"}, summary="One template")
    async def get_template(self, res: Res, name: FromPath[str]) -> templates.Template:
        async with res.session() as session:
            found = await templates.get_template(session, check_name(name))
        if found is None:
            raise TemplateNotFound(f"there is no template {name!r}")
        return found

    @delete(
        "/{name:str}",
        status_code=204,
        opt={"scope": "templates:write", "action": "templates.delete"},
        summary="Delete a template",
    )
    async def delete_template(self, res: Res, caller: Caller, name: FromPath[str]) -> Response[None]:
        async with res.writing() as session:
            found = await templates.get_template(session, check_name(name))
            if found is None:
                raise TemplateNotFound(f"there is no template {name!r}")
            if found.owner != caller.owner and not caller.is_admin:
                raise Forbidden(
                    f"template {name!r} belongs to {found.owner}; only they or an admin may delete it"
                )
            await templates.delete_template(session, name)
        return Response(None, status_code=204)
