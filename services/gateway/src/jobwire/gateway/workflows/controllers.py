"""HTTP for ``/v1/workflows``: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from jobwire.contracts import v1
from jobwire.runtime.metrics import SUBMITTED_JOBS

from ..auth.audit import set_target
from ..jobs.controllers import BATCH_BODY_LIMIT
from ..jobs.openapi import WorkflowSpecBody
from ..owner import owner_of
from ..params import Caller, Res
from ..problems import ProblemDetails
from . import service

READ = {"scope": "jobs:read"}
WorkflowId = Annotated[str, PathParameter(description="The workflow's id (a UUIDv7)")]


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(ProblemDetails, description=description, media_type="application/problem+json")


class WorkflowController(Controller):
    path = "/v1/workflows"
    tags = ["workflows"]

    @post(
        "/",
        status_code=201,
        summary="Submit jobs that refer to each other by name in `after`, stored together or not at all",
        operation_class=WorkflowSpecBody,
        opt={"scope": "jobs:submit", "action": "workflows.submit"},
        request_max_body_size=BATCH_BODY_LIMIT,
        responses={
            202: ResponseSpec(v1.WorkflowSubmitted, description="Durably queued whole; not stored yet"),
            413: _problem("Body or encoded workflow over the size limit"),
            422: _problem(
                "Not a valid workflow: a job without a name, a name given twice, `after` naming no job "
                "of the workflow nor of the submitter, a cycle (each problem listed in `errors`), or a "
                "job no node could run"
            ),
            429: _problem("The workflow would pass a quota; none of it was submitted"),
        },
    )
    async def submit_workflow(
        self, request: Request[Any, Any, Any], res: Res
    ) -> Response[v1.WorkflowSubmitted]:
        """Body: ``{"name": ..., "jobs": [JobSpec with a unique "name", ...]}``, where ``after[].job``
        is another job's name (or an id of one of your jobs). Answers the workflow's id and each job's
        id by name: 201 once the scheduler stored them all, 202 when they are durably queued."""
        spec = service.parse(await request.body(), request.headers.get("content-type"))
        done = await service.submit(res, spec, owner=owner_of(request))
        set_target(request.scope, done.id)
        SUBMITTED_JOBS.labels(kind="workflow").inc(len(done.jobs))
        headers = {"Location": f"/v1/workflows/{done.id}"}
        return Response(done, status_code=201 if done.accepted else 202, headers=headers)

    @get(
        "/",
        summary="List workflows, newest first (yours; an admin's: everyone's)",
        opt={"scope": "jobs:read"},
    )
    async def list_workflows(
        self,
        res: Res,
        caller: Caller,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the previous page")
        ] = None,
    ) -> v1.WorkflowPage:
        return await service.list_workflows(res, owner=caller.visible_owner, limit=limit, cursor=cursor)

    @get(
        "/{workflow_id:str}",
        summary="One workflow: its jobs in dependency order with their states, and its edges",
        responses={404: _problem("No such workflow")},
        opt={"scope": "jobs:read"},
    )
    async def get_workflow(self, res: Res, caller: Caller, workflow_id: WorkflowId) -> v1.WorkflowView:
        return await service.show(res, workflow_id, owner=caller.visible_owner)
