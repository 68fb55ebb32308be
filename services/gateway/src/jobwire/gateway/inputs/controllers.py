"""HTTP for ``/v1/inputs``: upload (raw bytes), download, list with ``prefix``, delete.

Every route acts on the caller's own inputs; an admin may name another ``owner`` (and lists every
owner's without one). For anyone else another owner's input does not exist: 404, as for jobs.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Annotated, Any
from urllib.parse import quote, unquote_to_bytes

from litestar import Controller, Request, Response, delete, get, put
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from ..auth.audit import set_target
from ..auth.principal import Principal
from ..params import Caller, Res
from .service import (
    InputInfo,
    InputList,
    InputNotFound,
    InputTooLarge,
    check_name,
    delete_input,
    list_inputs,
    open_input,
    put_input,
)

Owner = Annotated[
    str | None,
    QueryParameter(description="admins: whose inputs (default: your own; a list without it: everyone's)"),
]


def _name(request: Request[Any, Any, Any]) -> str:
    """The name exactly as sent, percent-decoded from the raw request path: the router merges repeated
    slashes, which would turn ``//etc/passwd`` into a harmless-looking ``etc/passwd`` instead of
    refusing it."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    _, found, tail = bytes(raw).partition(InputController.path.encode() + b"/")
    tail = tail.split(b"?", 1)[0]
    try:
        name = unquote_to_bytes(tail).decode() if found else ""
    except UnicodeDecodeError:
        name = "\ufffd"  # refused below like any other character outside the rule
    return check_name(name)


def _owner(caller: Principal, owner: str | None, name: str) -> str:
    """Whose input this request touches; someone else's is a 404 for non-admins."""
    if owner is None or owner == caller.owner:
        return caller.owner
    if caller.is_admin:
        return owner
    raise InputNotFound(f"there is no input {name!r}")


class InputController(Controller):
    path = "/v1/inputs"
    tags = ["inputs"]

    # The app-wide JSON body limit does not apply: uploads have their own, ``max_input_size``.
    @put(
        "/{name:path}",
        opt={"scope": "inputs:write", "action": "inputs.put"},
        request_max_body_size=None,
        summary="Store the request body (raw bytes) as a named input; replaces one of the same name",
    )
    async def put_input(
        self,
        request: Request[Any, Any, Any],
        res: Res,
        caller: Caller,
        name: FromPath[str],
        owner: Owner = None,
    ) -> Response[InputInfo]:
        name = _name(request)
        whose = _owner(caller, owner, name)
        set_target(request.scope, f"{whose}/{name}")
        limit = res.settings.max_input_size
        if request.content_length is not None and request.content_length > limit:
            raise InputTooLarge(f"an input may be at most {limit} bytes")
        info, created = await put_input(res, whose, name, request.stream(), limit=limit)
        return Response(info, status_code=201 if created else 200)

    @get("/", opt={"scope": "inputs:read"}, summary="Inputs whose name starts with `prefix`, by name")
    async def list_inputs(
        self,
        res: Res,
        caller: Caller,
        prefix: Annotated[str, QueryParameter(max_length=255)] = "",
        owner: Owner = None,
    ) -> InputList:
        if not caller.is_admin:
            if owner not in (None, caller.owner):
                return InputList(items=[])  # someone else's inputs do not exist for this caller
            owner = caller.owner
        return InputList(items=await list_inputs(res, owner, prefix))

    # No media_type here: a handler's media_type would override the Stream's own (guessed from the name).
    @get("/{name:path}", opt={"scope": "inputs:read"}, summary="Download one input")
    async def download(
        self,
        request: Request[Any, Any, Any],
        res: Res,
        caller: Caller,
        name: FromPath[str],
        owner: Owner = None,
    ) -> Stream:
        name = _name(request)
        download = await open_input(res, _owner(caller, owner, name), name)
        headers = {
            "Content-Length": str(download.info.size or 0),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(posixpath.basename(name))}",
        }
        if download.info.digest:
            headers["Digest"] = download.info.digest
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Stream(download.chunks, media_type=media_type, headers=headers)

    @delete(
        "/{name:path}",
        status_code=204,
        opt={"scope": "inputs:write", "action": "inputs.delete"},
        summary="Delete an input (jobs already started keep their copy)",
    )
    async def delete_input(
        self,
        request: Request[Any, Any, Any],
        res: Res,
        caller: Caller,
        name: FromPath[str],
        owner: Owner = None,
    ) -> Response[None]:
        name = _name(request)
        whose = _owner(caller, owner, name)
        set_target(request.scope, f"{whose}/{name}")
        await delete_input(res, whose, name)
        return Response(None, status_code=204)
