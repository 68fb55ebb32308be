"""HTTP for ``/v1/arrays``: an array's counts and paged tasks; cancel, hold and release it whole.

One task of an array is a job: ``/v1/jobs/{task's job_id}`` reads, cancels, holds or requeues it alone.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from jobwire.contracts import v1
from jobwire.store.arrays import MAX_TASK_PAGE

from ..jobs.schemas import parse_states
from ..params import Caller, Res
from ..problems import ProblemDetails
from . import service

ArrayId = Annotated[str, PathParameter(description="The array's id (given when it was submitted)")]


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(ProblemDetails, description=description, media_type="application/problem+json")


async def _command(res: Res, caller: Caller, array_id: str, verb: v1.Verb) -> Response[v1.ArrayView]:
    view, shown = await service.command(res, array_id, verb, owner=caller.owner, visible=caller.visible_owner)
    return Response(view, status_code=200 if shown else 202)


class ArrayController(Controller):
    path = "/v1/arrays"
    tags = ["arrays"]

    @get(
        "/{array_id:str}",
        summary="An array: task counts by state and a page of its tasks in index order",
        responses={404: _problem("No such array")},
        opt={"scope": "jobs:read"},
    )
    async def get_array(
        self,
        res: Res,
        caller: Caller,
        array_id: ArrayId,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_TASK_PAGE)] = 100,
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the previous page")
        ] = None,
        states: Annotated[
            list[str] | None,
            QueryParameter(
                name="state", description="Only tasks in these states (repeatable or a comma list)"
            ),
        ] = None,
    ) -> v1.ArrayView:
        return await service.get_array(
            res,
            array_id,
            visible=caller.visible_owner,
            cursor=cursor,
            limit=limit,
            states=parse_states(states),
        )

    @post(
        "/{array_id:str}/cancel",
        status_code=200,
        summary="Cancel an array: its waiting tasks at once, its running ones through their nodes",
        responses={
            202: ResponseSpec(v1.ArrayView, description="Cancel sent; the array does not show it yet"),
            404: _problem("No such array"),
            409: _problem("The array already finished"),
        },
        opt={"scope": "jobs:cancel", "action": "arrays.cancel"},
    )
    async def cancel_array(self, res: Res, caller: Caller, array_id: ArrayId) -> Response[v1.ArrayView]:
        return await _command(res, caller, array_id, v1.Verb.CANCEL)

    @post(
        "/{array_id:str}/hold",
        status_code=200,
        summary="Hold an array: no task starts until it is released (running tasks go on)",
        responses={
            202: ResponseSpec(v1.ArrayView, description="Hold sent; the array does not show it yet"),
            404: _problem("No such array"),
            409: _problem("The array already finished"),
        },
        opt={"scope": "jobs:cancel", "action": "arrays.hold"},
    )
    async def hold_array(self, res: Res, caller: Caller, array_id: ArrayId) -> Response[v1.ArrayView]:
        return await _command(res, caller, array_id, v1.Verb.HOLD)

    @post(
        "/{array_id:str}/release",
        status_code=200,
        summary="Release a held array",
        responses={
            202: ResponseSpec(v1.ArrayView, description="Release sent; the array does not show it yet"),
            404: _problem("No such array"),
            409: _problem("The array is not held, or finished"),
        },
        opt={"scope": "jobs:cancel", "action": "arrays.release"},
    )
    async def release_array(self, res: Res, caller: Caller, array_id: ArrayId) -> Response[v1.ArrayView]:
        return await _command(res, caller, array_id, v1.Verb.RELEASE)
