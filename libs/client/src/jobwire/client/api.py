"""A small synchronous client for the jobwire REST API.

Responses are decoded into the ``jobwire.contracts.v1`` types with msgspec. Errors surface as
:class:`ApiError` (the server's problem+json) or :class:`ConnectionFailed` (nothing answered).
Event streams (logs, job events) survive dropped connections: they reconnect with ``Last-Event-ID``
so the caller sees every piece exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from jobwire.contracts import v1
from jobwire.contracts.v1 import programs as pv

from .config import DEFAULT_URL
from .errors import ApiError, ConnectionFailed, UnexpectedResponse, WaitTimeout, describe_transport_error
from .models import (
    BatchSubmission,
    JobPage,
    LogEvent,
    Submission,
    event_of,
    items_of,
    job_finished,
    log_event_of,
)
from .sse import SseEvent, SseParser

T = TypeVar("T")
_RETRY_STATUSES = frozenset({502, 503, 504})
Params = list[tuple[str, str]]


def _user_agent() -> str:
    try:
        return f"jobwire-client/{version('jobwire-client')}"
    except PackageNotFoundError:
        return "jobwire-client"


class JobwireClient:
    """Talks to one gateway. Use as a context manager, or call :meth:`close`.

    Args:
        base_url: the gateway, e.g. ``http://127.0.0.1:8000``.
        token: sent as ``Authorization: Bearer <token>``; never logged or shown.
        timeout: seconds for ordinary requests (streams wait up to ``stream_idle`` for the next byte).
        transport: an httpx transport, for tests or unix sockets.
    """

    #: seconds between reconnects of a broken stream; the last value repeats
    RECONNECT_DELAYS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0)
    #: consecutive failed reconnects before a stream gives up
    MAX_RECONNECTS = 30

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        stream_idle: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": _user_agent()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )
        self._stream_timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0), read=stream_idle)

    def __repr__(self) -> str:
        return f"JobwireClient({self.base_url!r})"

    def __enter__(self) -> JobwireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- jobs ------------------------------------------------------------------------------------

    def submit(self, spec: v1.JobSpec, idempotency_key: str | None = None) -> v1.Job:
        return self.submit_detailed(spec, idempotency_key).job

    def submit_detailed(self, spec: v1.JobSpec, idempotency_key: str | None = None) -> Submission:
        """Submit and say whether the scheduler confirmed it (201) or it is only durably queued (202)."""
        headers = {"Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        resp = self._request("POST", "/v1/jobs", content=v1.encode(spec), headers=headers)
        return Submission(
            job=self._decode(resp, v1.Job),
            accepted=resp.status_code != 202,
            replayed=resp.headers.get("Idempotent-Replayed", "").lower() == "true",
        )

    def submit_batch(self, specs: Iterable[v1.JobSpec]) -> BatchSubmission:
        """Submit up to 10,000 jobs in one request, stored together or not at all; ids in order."""
        body = v1.encode({"jobs": list(specs)})
        resp = self._request(
            "POST", "/v1/jobs:batch", content=body, headers={"Content-Type": "application/json"}
        )
        ids = self._decode(resp, dict[str, Any])["ids"]
        return BatchSubmission(ids=list(ids), accepted=resp.status_code != 202)

    def submit_workflow(self, spec: v1.WorkflowSpec) -> v1.WorkflowSubmitted:
        """Submit jobs that name each other in ``after``, stored together or not at all."""
        headers = {"Content-Type": "application/json"}
        resp = self._request("POST", "/v1/workflows", content=v1.encode(spec), headers=headers)
        return self._decode(resp, v1.WorkflowSubmitted)

    def list_workflows(self, *, limit: int | None = None, cursor: str | None = None) -> v1.WorkflowPage:
        """One page of workflows, newest first."""
        params: Params = [("limit", str(limit))] if limit else []
        params += [("cursor", cursor)] if cursor else []
        return self._decode(self._request("GET", "/v1/workflows", params=params), v1.WorkflowPage)

    def workflow(self, workflow_id: str) -> v1.WorkflowView:
        return self._decode(
            self._request("GET", f"/v1/workflows/{quote(workflow_id, safe='')}"), v1.WorkflowView
        )

    def get(self, job_id: str) -> v1.Job:
        return self._decode(self._request("GET", _job(job_id)), v1.Job)

    def list_jobs(
        self,
        *,
        state: Iterable[str] = (),
        node: str | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        owner: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page, newest first."""
        params: Params = [("state", s) for s in state]
        params += [("label", f"{k}={v}") for k, v in (labels or {}).items()]
        for key, value in (("node", node), ("name", name), ("owner", owner), ("cursor", cursor)):
            if value is not None:
                params.append((key, value))
        if limit is not None:
            params.append(("limit", str(limit)))
        return self._decode(self._request("GET", "/v1/jobs", params=params), JobPage)

    def count_jobs(
        self,
        *,
        node: str | None = None,
        labels: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> dict[str, int]:
        """Jobs per state (every state, zero included) among those the caller may see."""
        params: Params = [("label", f"{k}={v}") for k, v in (labels or {}).items()]
        for key, value in (("node", node), ("owner", owner)):
            if value is not None:
                params.append((key, value))
        raw = self._decode(self._request("GET", "/v1/jobs/counts", params=params), dict[str, Any])
        return _convert(raw["by_state"], dict[str, int])

    def iter_jobs(
        self, *, limit: int | None = None, page_size: int = 100, **filters: Any
    ) -> Iterator[v1.Job]:
        """Every matching job (or the newest ``limit``), following ``next_cursor`` page by page."""
        cursor: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - seen)
            page = self.list_jobs(limit=size, cursor=cursor, **filters)
            for job in page.items:
                yield job
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> v1.Job:
        return self._decode(self._request("POST", _job(job_id, "cancel")), v1.Job)

    def hold(self, job_id: str) -> v1.Job:
        return self._decode(self._request("POST", _job(job_id, "hold")), v1.Job)

    def release(self, job_id: str) -> v1.Job:
        return self._decode(self._request("POST", _job(job_id, "release")), v1.Job)

    def requeue(self, job_id: str) -> v1.Job:
        """Run a running or finished job again as a new attempt."""
        return self._decode(self._request("POST", _job(job_id, "requeue")), v1.Job)

    def get_array(
        self, array_id: str, *, limit: int = 100, cursor: str | None = None, states: Iterable[str] = ()
    ) -> v1.ArrayView:
        """An array's task counts by state and a page of its tasks (only those in ``states``, if any)."""
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        if states:
            params["state"] = ",".join(states)
        path = f"/v1/arrays/{quote(array_id, safe='')}"
        return self._decode(self._request("GET", path, params=params), v1.ArrayView)

    def array_command(self, array_id: str, verb: str) -> v1.ArrayView:
        """``cancel``, ``hold`` or ``release`` a whole array."""
        path = f"/v1/arrays/{quote(array_id, safe='')}/{verb}"
        return self._decode(self._request("POST", path), v1.ArrayView)

    def delete(self, job_id: str) -> v1.Job | None:
        """Delete the job with its logs and artifacts; a job when the deletion is still under way."""
        resp = self._request("DELETE", _job(job_id))
        return None if resp.status_code == 204 or not resp.content else self._decode(resp, v1.Job)

    def wait(self, job_id: str, timeout: float | None = None, *, poll: float = 2.0) -> v1.Job:
        """Poll until the job has finished; :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.2
        while True:
            job = self.get(job_id)
            if job_finished(job):
                return job
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(job, timeout or 0.0)
            time.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 1.5, poll)

    # --- output, events, progress, artifacts -----------------------------------------------------

    def logs(
        self,
        job_id: str,
        *,
        follow: bool = False,
        offset: int | None = None,
        stream: str | None = None,
        rank: int | None = None,
    ) -> Iterator[LogEvent]:
        """The job's output in order; with ``follow``, until the job has finished and its output ended;
        with ``rank``, only that rank's of a gang job."""
        params: Params = [("follow", "true" if follow else "false")]
        if rank is not None:
            params.append(("rank", str(rank)))
        if offset is not None:
            params.append(("offset", str(offset)))
        if stream is not None:
            params.append(("stream", stream))
        done = (lambda: job_finished(self.get(job_id))) if follow else (lambda: True)
        for sse in self._sse(_job(job_id, "logs"), params, done):
            event = log_event_of(sse)
            if event is not None:
                yield event

    def follow_logs(
        self, job_id: str, offset: int | None = None, stream: str | None = None
    ) -> Iterator[LogEvent]:
        return self.logs(job_id, follow=True, offset=offset, stream=stream)

    def events(self, job_id: str) -> Iterator[v1.Event]:
        """Transitions and progress as they happen; ends once the job has finished."""
        for sse in self._sse(_job(job_id, "events"), [], lambda: job_finished(self.get(job_id))):
            event = event_of(sse, job_id)
            if event is not None:
                yield event

    def progress(self, job_id: str) -> v1.JobProgress | None:
        """What the job last reported, or None when it has reported nothing yet."""
        try:
            resp = self._request("GET", _job(job_id, "progress"))
        except ApiError as exc:
            if exc.status == 404 and not (exc.type or "").endswith("job-not-found"):
                return None
            raise
        raw: Any = self._decode(resp, Any)
        if isinstance(raw, dict):
            raw.setdefault("job_id", job_id)
            raw.setdefault("attempt", 0)
        return _convert(raw, v1.JobProgress)

    def artifacts(self, job_id: str) -> list[v1.Artifact]:
        raw = items_of(self._decode(self._request("GET", _job(job_id, "artifacts")), Any))
        return _convert(raw, list[v1.Artifact])

    def download_artifact(self, job_id: str, name: str, out: IO[bytes]) -> int:
        """Stream one artifact into ``out``; returns the number of bytes written."""
        return self._download(_job(job_id, "artifacts", quote(name.lstrip("/"), safe="/")), out)

    def files(self, job_id: str, path: str = "") -> tuple[list[v1.FileEntry], int]:
        """The files below ``path`` in the job's directory on its node (while it runs, and after
        until it is deleted), and how many entries the node left out of a very long listing."""
        params = {"path": path} if path else None
        body = self._decode(self._request("GET", _job(job_id, "files"), params=params), dict[str, Any])
        return _convert(body.get("items") or [], list[v1.FileEntry]), int(body.get("truncated") or 0)

    def download_file(
        self, job_id: str, path: str, out: IO[bytes], *, offset: int = 0, limit: int | None = None
    ) -> int:
        """Stream one file of the job's directory into ``out``; returns the number of bytes written."""
        params = {"offset": str(offset)} if offset else {}
        if limit is not None:
            params["limit"] = str(limit)
        return self._download(_job(job_id, "files", quote(path.lstrip("/"), safe="/")), out, params or None)

    def _download(self, path: str, out: IO[bytes], params: Mapping[str, str] | None = None) -> int:
        written = 0
        try:
            with self._http.stream("GET", path, params=params, timeout=self._stream_timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ApiError.from_response(resp)
                for chunk in resp.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, describe_transport_error(exc)) from exc
        return written

    # --- cluster ---------------------------------------------------------------------------------

    def nodes(self) -> list[v1.NodeView]:
        raw = items_of(self._decode(self._request("GET", "/v1/nodes"), Any))
        return _convert(raw, list[v1.NodeView])

    def programs(
        self,
        *,
        name: str | None = None,
        version: str | None = None,
        cluster: str | None = None,
        node: str | None = None,
    ) -> list[pv.ProgramView]:
        """What jobs may name as ``program: NAME@VERSION``, one entry per node offering it."""
        asked = {"name": name, "version": version, "cluster": cluster, "node": node}
        params = {k: v for k, v in asked.items() if v is not None}
        raw = items_of(self._decode(self._request("GET", "/v1/programs", params=params), Any))
        return _convert(raw, list[pv.ProgramView])

    def health(self) -> Any:
        return self._decode(self._request("GET", "/health"), Any)

    def ready(self) -> Any:
        return self._decode(self._request("GET", "/ready"), Any)

    # --- inputs ----------------------------------------------------------------------------------

    def put_input(self, name: str, data: IO[bytes], *, owner: str | None = None) -> dict[str, Any]:
        """Upload ``data`` (read in pieces, never whole) as the input ``name``; returns its info."""

        def pieces() -> Iterator[bytes]:
            while piece := data.read(UPLOAD_PIECE):
                yield piece

        resp = self._request(
            "PUT",
            _input(name),
            content=pieces(),
            params=_owner(owner),
            headers={"Content-Type": "application/octet-stream"},
            timeout=self._stream_timeout,
        )
        return dict(self._decode(resp, dict[str, Any]))

    def download_input(self, name: str, out: IO[bytes], *, owner: str | None = None) -> int:
        """Stream the input ``name`` into ``out``; returns the number of bytes written."""
        return self._download(_input(name), out, _owner(owner))

    def list_inputs(self, prefix: str = "", *, owner: str | None = None) -> list[dict[str, Any]]:
        params = {"prefix": prefix, **_owner(owner)} if prefix else _owner(owner)
        return list(items_of(self._decode(self._request("GET", "/v1/inputs", params=params), Any)))

    def delete_input(self, name: str, *, owner: str | None = None) -> None:
        self._request("DELETE", _input(name), params=_owner(owner))

    # --- tokens (admin) ---------------------------------------------------------------------------

    def create_token(
        self,
        owner: str,
        *,
        days: float | None = None,
        scopes: list[str] | None = None,
        admin: bool = False,
        note: str | None = None,
    ) -> dict[str, Any]:
        """``{"secret": ..., "token": {...}}``: the secret is shown this once."""
        body: dict[str, Any] = {"owner": owner, "admin": admin}
        for key, value in (("days", days), ("scopes", scopes), ("note", note)):
            if value is not None:
                body[key] = value
        return dict(self._decode(self._request("POST", "/v1/tokens", json=body), dict[str, Any]))

    def list_tokens(self, owner: str | None = None) -> list[dict[str, Any]]:
        params = {"owner": owner} if owner else {}
        return list(items_of(self._decode(self._request("GET", "/v1/tokens", params=params), Any)))

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        resp = self._request("DELETE", f"/v1/tokens/{quote(token_id, safe='')}")
        return dict(self._decode(resp, dict[str, Any]))

    # --- plumbing --------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.base_url, describe_transport_error(exc)) from exc
        if resp.status_code >= 400:
            raise ApiError.from_response(resp)
        return resp

    def _decode(self, resp: httpx.Response, tp: type[T]) -> T:
        try:
            return v1.decode(resp.content, tp)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            url = resp.request.url.copy_with(query=None)
            raise UnexpectedResponse(f"cannot read the answer of {url}: {exc}") from exc

    def _sse(self, path: str, params: Params, done: Callable[[], bool]) -> Iterator[SseEvent]:
        """SSE events of ``path`` until the server sends ``end`` or has nothing more to say.

        A broken connection is resumed after the last complete event. A server that closes cleanly
        without ``end`` is asked again from there; an answer with no new events while ``done()``
        ends the stream (servers without ``end`` cannot tell "finished" from "dropped" otherwise).
        The first connection fails fast; later ones are retried, as a gateway may restart mid-stream.
        """
        last_id: str | None = None
        connected = False
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            parser = SseParser()
            fresh = False  # this connection brought new events
            try:
                with self._http.stream(
                    "GET", path, params=tuple(params), headers=headers, timeout=self._stream_timeout
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        error = ApiError.from_response(resp)
                        if not connected or resp.status_code not in _RETRY_STATUSES:
                            raise error
                        problem = str(error)
                    else:
                        connected = True
                        for chunk in resp.iter_bytes():
                            for event in parser.feed(chunk):
                                if event.event == "end":
                                    return
                                fresh = True
                                yield event
                            last_id = parser.last_id or last_id
                        if fresh and last_id:
                            failures = 0
                            continue
                        if done():
                            return
                        problem = "the stream ended before the job finished"
            except httpx.TransportError as exc:
                if not connected:
                    raise ConnectionFailed(self.base_url, describe_transport_error(exc)) from exc
                problem = describe_transport_error(exc)
            except ConnectionFailed as exc:  # from done(): the gateway is restarting
                problem = exc.reason
            last_id = parser.last_id or last_id
            if fresh:
                failures = 0
            if failures >= self.MAX_RECONNECTS:
                raise ConnectionFailed(self.base_url, f"gave up resuming after {failures} tries: {problem}")
            time.sleep(self.RECONNECT_DELAYS[min(failures, len(self.RECONNECT_DELAYS) - 1)])
            failures += 1


UPLOAD_PIECE = 1024 * 1024


def _input(name: str) -> str:
    """The input's URL path. The name is checked here first: an HTTP client would collapse a ``..``
    segment before sending, so the server would see (and answer for) another path."""
    return "/v1/inputs/" + quote(v1.check_input_name(name), safe="/")


def _owner(owner: str | None) -> dict[str, str]:
    return {"owner": owner} if owner else {}


def _job(job_id: str, *parts: str) -> str:
    return "/".join(["/v1/jobs", quote(job_id, safe=""), *parts])


def _convert(raw: Any, tp: type[T]) -> T:
    try:
        return msgspec.convert(raw, tp)
    except msgspec.ValidationError as exc:
        raise UnexpectedResponse(f"cannot read the answer: {exc}") from exc
