"""HTTP for ``/v1/jobs``: parse, call the service, shape the response. Nothing else lives here."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, QueryParameter

from jobwire.contracts import v1
from jobwire.runtime.metrics import SUBMITTED_JOBS

from ..auth.audit import carried_record, set_target
from ..owner import owner_of
from ..params import Caller, JobId, Res
from ..problems import InvalidBody, ProblemDetails
from ..programs import service as programs
from ..resources import STATE_KEY, Resources
from ..templates import service as templates
from . import after, batch, feasible, holding, multipart, options, service, submit, waiting
from .lookup import require_job
from .openapi import JobSpecBody, raw_header
from .schemas import JobPage, parse_labels, parse_states


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(ProblemDetails, description=description, media_type="application/problem+json")


#: a batch's body may be this large (10,000 specs); the bus's max_payload bounds it again
BATCH_BODY_LIMIT = 64 * 1024 * 1024


def location(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


class JobController(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]

    @post(
        "/",
        status_code=201,
        summary="Submit a job",
        operation_class=JobSpecBody,
        opt={"scope": "jobs:submit", "action": "jobs.submit"},
        responses={
            202: ResponseSpec(v1.Job, description="Durably queued; the scheduler has not stored it yet"),
            400: _problem("Malformed JSON or a bad Idempotency-Key"),
            413: _problem("Body over the size limit"),
            415: _problem("Body is not JSON"),
            422: _problem(
                "Not a valid JobSpec: unknown field, value out of range, no command, a program no node "
                "offers, resources or hints no registered node could ever satisfy, `after` naming no "
                "job of the submitter's"
            ),
        },
    )
    async def submit_job(
        self,
        request: Request[Any, Any, Any],
        wait: Annotated[
            float | None,
            QueryParameter(
                ge=0,
                le=waiting.MAX_WAIT,
                description="Answer when the job has finished (201, with `Link`s to its logs and "
                "artifacts), or after this many seconds with the job as it stands (202)",
            ),
        ] = None,
    ) -> Response[v1.Job]:
        """Validate the JobSpec, queue it for the scheduler and wait briefly for it to be stored.

        The resources and the ``Idempotency-Key`` header (documented by ``JobSpecBody``) are read here,
        not declared: Litestar resolved a dependency and built a ``Headers`` of every header for them on
        each submit, ~6% of the gateway's CPU per submit (issue 11)."""
        res: Resources = request.app.state[STATE_KEY]
        idempotency_key = raw_header(request.scope, b"idempotency-key")
        body = await templates.expand(res, await request.body())  # a JSON `template` + overrides
        warnings: list[str] = []
        staged: list[tuple[str, bytes]] = []  # files the form sent that the job reads as inputs
        spec = multipart.parse_any(body, request.headers.get("content-type"), warnings, staged)
        await programs.check_offered(res, spec)
        await feasible.check(res, spec, owner_of(request))
        options.check_backend_options(res, spec, owner_of(request))
        await after.check(res, owner_of(request), after.refs([spec]))
        if spec.array is not None and wait is not None:
            # the body and the query together are what cannot be processed: a 422 naming the field
            raise InvalidBody(
                "`wait` is for one job; follow an array at GET /v1/arrays/{id}", extra={"path": "$.array"}
            )
        key = submit.check_idempotency_key(idempotency_key)
        await multipart.store_files(res, owner_of(request), staged)
        done = await submit.submit(
            res,
            spec,
            owner=owner_of(request),
            idempotency_key=key,
            audit=functools.partial(carried_record, request.scope),
        )
        set_target(request.scope, done.job.id)
        if not done.replayed:
            kind, n = ("array", spec.array.count) if spec.array is not None else ("job", 1)
            SUBMITTED_JOBS.labels(kind=kind).inc(n)
        # an array answers as a job with ``array`` set; it is read at /v1/arrays/{id}
        where = f"/v1/arrays/{done.job.id}" if spec.array is not None else location(done.job.id)
        headers = {"Location": where}
        if warnings:  # RFC 9111's free-text form: 299 = a persistent warning
            headers["Warning"] = ", ".join(f'299 jobwire "{w}"' for w in warnings)
        if done.replayed:
            headers["Idempotent-Replayed"] = "true"
        if wait is not None:
            job, finished = await waiting.until_done(res, done.job, wait)
            headers["Link"] = waiting.links(job.id)
            return Response(job, status_code=201 if finished else 202, headers=headers)
        return Response(done.job, status_code=201 if done.accepted else 202, headers=headers)

    @get("/", summary="List jobs, newest first", opt={"scope": "jobs:read"})
    async def list_jobs(
        self,
        res: Res,
        caller: Caller,
        states: Annotated[
            list[str] | None,
            QueryParameter(name="state", description="Repeatable, or a comma list: any of these states"),
        ] = None,
        node: FromQuery[str | None] = None,
        name: FromQuery[str | None] = None,
        label: Annotated[
            list[str] | None, QueryParameter(description="KEY=VALUE, repeatable: every pair must match")
        ] = None,
        owner: FromQuery[str | None] = None,
        array: Annotated[
            str | None, QueryParameter(description="An array's id: its tasks (made so far)")
        ] = None,
        workflow: Annotated[str | None, QueryParameter(description="A workflow's id: its jobs")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the previous page")
        ] = None,
    ) -> JobPage:
        if caller.visible_owner is not None:
            if owner not in (None, caller.owner):
                return JobPage(items=[])  # someone else's jobs do not exist for this caller
            owner = caller.owner
        return await service.list_jobs(
            res,
            states=parse_states(states),
            node=node,
            name=name,
            labels=parse_labels(label),
            owner=owner,
            array=array,
            workflow=workflow,
            limit=limit,
            cursor=cursor,
        )

    @get(
        "/{job_id:str}",
        summary="One job",
        responses={404: _problem("No such job")},
        opt={"scope": "jobs:read"},
    )
    async def get_job(self, res: Res, caller: Caller, job_id: JobId) -> v1.Job:
        return await require_job(res, job_id, owner=caller.visible_owner)

    @post(
        "/{job_id:str}/cancel",
        status_code=200,
        summary="Cancel a job",
        responses={
            202: ResponseSpec(v1.Job, description="Cancel requested; the job has not stopped yet"),
            404: _problem("No such job"),
            409: _problem("The job already finished"),
        },
        opt={"scope": "jobs:cancel", "action": "jobs.cancel"},
    )
    async def cancel_job(self, caller: Caller, res: Res, job_id: JobId) -> Response[v1.Job]:
        job, finished = await service.cancel(res, job_id, owner=caller.owner, visible=caller.visible_owner)
        return Response(job, status_code=200 if finished else 202)

    @post(
        "/{job_id:str}/hold",
        status_code=200,
        summary="Hold a job: a queued one in jobwire's queue, a launched one in its batch system",
        responses={
            202: ResponseSpec(v1.Job, description="Hold requested; the job does not show held yet"),
            404: _problem("No such job"),
            409: _problem("The job runs, finished, or started where it cannot be held"),
        },
        opt={"scope": "jobs:cancel", "action": "jobs.hold"},
    )
    async def hold_job(self, caller: Caller, res: Res, job_id: JobId) -> Response[v1.Job]:
        job, held = await holding.hold(res, job_id, visible=caller.visible_owner)
        return Response(job, status_code=200 if held else 202)

    @post(
        "/{job_id:str}/release",
        status_code=200,
        summary="Release a held job",
        responses={
            202: ResponseSpec(v1.Job, description="Release requested; the job is still held"),
            404: _problem("No such job"),
            409: _problem("The job is not held"),
        },
        opt={"scope": "jobs:cancel", "action": "jobs.release"},
    )
    async def release_job(self, caller: Caller, res: Res, job_id: JobId) -> Response[v1.Job]:
        job, released = await holding.release(res, job_id, visible=caller.visible_owner)
        return Response(job, status_code=200 if released else 202)

    @post(
        "/{job_id:str}/requeue",
        status_code=200,
        summary="Run a running or finished job again as a new attempt (Slurm's scontrol requeue)",
        responses={
            202: ResponseSpec(v1.Job, description="Requeue requested; the run is still being stopped"),
            404: _problem("No such job"),
            409: _problem("The job is queued or held and has not run"),
        },
        opt={"scope": "jobs:cancel", "action": "jobs.requeue"},
    )
    async def requeue_job(self, caller: Caller, res: Res, job_id: JobId) -> Response[v1.Job]:
        job, queued = await service.requeue(res, job_id, owner=caller.owner, visible=caller.visible_owner)
        return Response(job, status_code=200 if queued else 202)

    @delete(
        "/{job_id:str}",
        status_code=202,
        summary="Delete a job with its logs, events and artifacts",
        responses={
            202: ResponseSpec(v1.Job, description="Delete requested; the job is not gone yet"),
            204: ResponseSpec(None, description="Deleted"),
            404: _problem("No such job"),
        },
        opt={"scope": "jobs:cancel", "action": "jobs.delete"},
    )
    async def delete_job(self, caller: Caller, res: Res, job_id: JobId) -> Response[Any]:
        job = await service.delete(res, job_id, owner=caller.owner, visible=caller.visible_owner)
        if job is None:
            return Response(None, status_code=204)
        return Response(job, status_code=202)


class JobBatchController(Controller):
    path = "/v1/jobs:batch"
    tags = ["jobs"]

    @post(
        "/",
        status_code=201,
        summary="Submit up to 10,000 jobs at once, stored together or not at all",
        opt={"scope": "jobs:submit", "action": "jobs.submit_batch"},
        request_max_body_size=BATCH_BODY_LIMIT,
        responses={
            202: ResponseSpec(batch.BatchSubmitted, description="Durably queued together; not stored yet"),
            413: _problem("Body or encoded batch over the size limit: split it"),
            422: _problem("Not a list of 1 to 10,000 valid JobSpecs (the path names the bad one)"),
            429: _problem("The batch would pass a quota; none of it was submitted"),
        },
    )
    async def submit_batch(self, request: Request[Any, Any, Any], res: Res) -> Response[batch.BatchSubmitted]:
        """Body: ``{"jobs": [JobSpec, ...]}`` or a JSON array of JobSpecs. Answers with the ids in order:
        201 once the scheduler stored them all (one transaction), 202 when they are durably queued."""
        specs = batch.parse_batch(await request.body(), request.headers.get("content-type"))
        done = await batch.submit_batch(res, specs, owner=owner_of(request))
        set_target(request.scope, f"{len(done.ids)} jobs")
        SUBMITTED_JOBS.labels(kind="batch").inc(len(done.ids))
        return Response(done, status_code=201 if done.accepted else 202)
