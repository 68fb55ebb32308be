"""A stand-in gateway for CLIENT tests: a real HTTP server on 127.0.0.1 speaking the REST routes.

This is not the gateway (services/gateway has its own tests); it answers the routes the client uses
with canned data, so the client is tested over real sockets: chunked SSE, dropped connections,
problem+json errors, cursors. It can speak both log formats: the gateway's (``event: log`` with a
LogChunk JSON) and the plain one (``event: stdout|stderr`` with the text).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import pytest

from jobwire.contracts import v1

T0 = "2030-01-02T03:04:05Z"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    """What the stub serves, and what it was asked; tests set the first and read the second."""

    url: str = ""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, bytes]] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    log_format: str = "gateway"  # or "plain"
    #: drop the log stream once, after this many chunks, in the middle of the next event
    drop_logs_after: int | None = None
    drop_style: str = "chunked"  # or "close": an HTTP/1.0-style body ended by closing the socket
    page_size: int = 2
    submit_status: int = 201
    token: str | None = None  # when set, other tokens get 401
    errors: list[str] = field(default_factory=list)
    _next: int = 0

    def add_job(self, **fields: Any) -> dict[str, Any]:
        self._next += 1
        job = {
            "id": f"01900000-0000-7000-8000-{self._next:012d}",
            "state": "queued",
            "created_at": T0,
            **fields,
        }
        if not any(k in fields for k in ("command", "script", "program", "code")):
            job["command"] = ["true"]
        self.jobs[job["id"]] = job
        return job

    def requests(self, method: str, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.startswith(prefix)]


class _Dropped(Exception):
    pass


def _problem(status: int, title: str, detail: str, slug: str = "bad-request") -> tuple[int, dict[str, Any]]:
    return status, {"type": f"urn:jobwire:problem:{slug}", "title": title, "status": status, "detail": detail}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stub: Stub

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # --- plumbing -------------------------------------------------------------------------------

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qs(parts.query)
        self.stub.seen.append(Seen(method, parts.path, query, dict(self.headers.items()), body))
        if self.stub.token and self.headers.get("Authorization") != f"Bearer {self.stub.token}":
            return self._json(
                *_problem(401, "Unauthorized", "a valid bearer token is required", "unauthorized")
            )
        routes: list[tuple[str, str, Callable[..., None]]] = [
            ("POST", r"/v1/jobs", self._submit),
            ("POST", r"/v1/jobs:batch", self._submit_batch),
            ("GET", r"/v1/jobs", self._list),
            ("GET", r"/v1/jobs/([^/]+)", self._get),
            ("POST", r"/v1/jobs/([^/]+)/cancel", self._cancel),
            ("POST", r"/v1/jobs/([^/]+)/(hold|release)", self._hold),
            ("POST", r"/v1/jobs/([^/]+)/requeue", self._requeue),
            ("DELETE", r"/v1/jobs/([^/]+)", self._delete),
            ("GET", r"/v1/jobs/([^/]+)/logs", self._logs),
            ("GET", r"/v1/jobs/([^/]+)/events", self._events),
            ("GET", r"/v1/jobs/([^/]+)/progress", self._progress),
            ("GET", r"/v1/jobs/([^/]+)/artifacts", self._artifacts),
            ("GET", r"/v1/jobs/([^/]+)/artifacts/(.+)", self._artifact),
            ("GET", r"/v1/nodes", self._nodes),
        ]
        for verb, pattern, fn in routes:
            m = re.fullmatch(pattern, parts.path)
            if verb == method and m:
                args = [unquote(g) for g in m.groups()]
                if args and args[0] not in self.stub.jobs:
                    return self._json(*_problem(404, "Job not found", f"no job {args[0]}", "job-not-found"))
                fn(*args, query=query, body=body)
                return
        self._json(*_problem(404, "Not found", f"no route matches {parts.path}", "not-found"))

    def _json(self, status: int, data: Any, content_type: str | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        ctype = content_type or ("application/problem+json" if status >= 400 else "application/json")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _sse(self, frames: Iterator[bytes]) -> None:
        chunked = self.stub.drop_style == "chunked"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

        def send(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()

        try:
            for frame in frames:
                send(frame)
        except _Dropped as dropped:
            send(str(dropped).encode())  # half an event, then the connection goes away
            self.close_connection = True
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    # --- routes ---------------------------------------------------------------------------------

    def _submit(self, *, query: Any, body: bytes) -> None:
        try:
            spec = v1.decode_strict(body, v1.JobSpec)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return self._json(*_problem(422, "Invalid request body", str(exc), "invalid-body"))
        job = self.stub.add_job(**msgspec.to_builtins(spec))
        job.update(node="node-a", queue_position=0)
        self._json(self.stub.submit_status, job)

    def _submit_batch(self, *, query: Any, body: bytes) -> None:
        specs = v1.decode_strict(body, dict[str, list[v1.JobSpec]])["jobs"]
        ids = [self.stub.add_job(**msgspec.to_builtins(spec))["id"] for spec in specs]
        self._json(self.stub.submit_status, {"ids": ids, "accepted": self.stub.submit_status == 201})

    def _list(self, *, query: dict[str, list[str]], body: bytes) -> None:
        jobs = sorted(self.stub.jobs.values(), key=lambda j: j["id"], reverse=True)
        if "state" in query:
            jobs = [j for j in jobs if j["state"] in query["state"]]
        if "cursor" in query:
            jobs = [j for j in jobs if j["id"] < query["cursor"][0]]
        size = min(int(query.get("limit", ["50"])[0]), self.stub.page_size)
        page = jobs[:size]
        more = len(jobs) > size
        self._json(200, {"items": page, "next_cursor": page[-1]["id"] if more else None})

    def _get(self, job_id: str, **_: Any) -> None:
        self._json(200, self.stub.jobs[job_id])

    def _cancel(self, job_id: str, **_: Any) -> None:
        job = self.stub.jobs[job_id]
        if job["state"] in ("succeeded", "failed", "cancelled", "timed_out"):
            return self._json(*_problem(409, "Conflict", f"job {job_id} already {job['state']}", "conflict"))
        job["state"] = "cancelled"
        self._json(200, job)

    def _hold(self, job_id: str, action: str, **_: Any) -> None:
        """Like the gateway: held from queued, released to queued, 409 otherwise."""
        job = self.stub.jobs[job_id]
        want, to = ("queued", "held") if action == "hold" else ("held", "queued")
        if job["state"] != want:
            slug = "cannot-hold" if action == "hold" else "not-held"
            return self._json(*_problem(409, "Conflict", f"job {job_id} is {job['state']}", slug))
        job["state"] = to
        self._json(200, job)

    def _requeue(self, job_id: str, **_: Any) -> None:
        """Like the gateway: a finished job is queued again as a new attempt, 409 before it ran."""
        job = self.stub.jobs[job_id]
        if job["state"] in ("queued", "held"):
            return self._json(*_problem(409, "Conflict", f"job {job_id} is {job['state']}", "cannot-requeue"))
        job["state"] = "queued"
        self._json(200, job)

    def _delete(self, job_id: str, **_: Any) -> None:
        del self.stub.jobs[job_id]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _logs(self, job_id: str, *, query: dict[str, list[str]], body: bytes) -> None:
        after = int(self.headers.get("Last-Event-ID") or query.get("offset", ["0"])[0])
        chunks = self.stub.logs.get(job_id, [])

        def frames() -> Iterator[bytes]:
            for seq, (stream, text) in enumerate(chunks, start=1):
                if seq <= after:
                    continue
                frame = self._log_frame(job_id, seq, stream, text)
                if self.stub.drop_logs_after is not None and seq > self.stub.drop_logs_after:
                    self.stub.drop_logs_after = None
                    raise _Dropped(frame[: len(frame) // 2].decode())
                yield frame
            if self.stub.log_format == "gateway":
                yield b"event: end\r\ndata: \r\n\r\n"

        self._sse(frames())

    def _log_frame(self, job_id: str, seq: int, stream: str, text: str) -> bytes:
        if self.stub.log_format == "gateway":
            chunk = {"job_id": job_id, "attempt": 1, "stream": stream, "offset": 0, "data": text}
            return f"id: {seq}\r\nevent: log\r\ndata: {json.dumps(chunk)}\r\n\r\n".encode()
        data = "".join(f"data: {line}\n" for line in text.split("\n"))
        return f"id: {seq}\nevent: {stream}\n{data}\n".encode()

    def _events(self, job_id: str, *, query: Any, body: bytes) -> None:
        after = int(self.headers.get("Last-Event-ID") or 0)
        job = self.stub.jobs[job_id]

        def frames() -> Iterator[bytes]:
            yield b": keep-alive\r\n\r\n"
            for seq, event in enumerate(self.stub.events.get(job_id, []), start=1):
                if seq <= after:
                    continue
                if event["kind"] == "transition":  # what the job looks like once this has happened
                    job.update(state=event["state"], exit_code=event.get("exit_code"))
                yield f"id: {seq}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n".encode()
            yield b"event: end\ndata: \n\n"

        self._sse(frames())

    def _progress(self, job_id: str, **_: Any) -> None:
        if job_id not in self.stub.progress:
            return self._json(*_problem(404, "Not found", "no progress yet", "no-progress"))
        at = T0
        self._json(200, {"job_id": job_id, "attempt": 1, "at": at, "progress": self.stub.progress[job_id]})

    def _artifacts(self, job_id: str, **_: Any) -> None:
        files = self.stub.artifacts.get(job_id, {})
        self._json(200, {"items": [{"name": n, "size": len(b)} for n, b in files.items()]})

    def _artifact(self, job_id: str, name: str, **_: Any) -> None:
        data = self.stub.artifacts.get(job_id, {}).get(name)
        if data is None:
            return self._json(*_problem(404, "Not found", f"no artifact {name}", "not-found"))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _nodes(self, **_: Any) -> None:
        self._json(200, {"items": self.stub.nodes})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: Stub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep the stub's troubles out of the CLI's captured stderr; a client hanging up is no trouble."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            self.stub.errors.append(traceback.format_exc())


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Stub]:
    """A running stub on a free port; the CLI is pointed at it and sees no real token or config."""
    state = Stub()
    handler = type("BoundHandler", (Handler,), {"stub": state})
    server = _Server(("127.0.0.1", 0), handler)
    server.stub = state
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("JOBWIRE_URL", state.url)
    monkeypatch.delenv("JOBWIRE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "200")
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
    assert not state.errors, state.errors[0]  # the stub itself broke: the test proves nothing


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``jobwire ARGV`` in-process; returns its exit status and what it printed."""
    from jobwire.client.cli import main

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
