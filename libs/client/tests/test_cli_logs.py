"""``jobwire logs``: output in order, resumed after a dropped connection without gaps or repeats."""

import json
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CHUNKS = [
    ("stdout", "epoch 1\n"),
    ("stderr", "warning: slow\n"),
    ("stdout", "epoch 2\nepoch 3\n"),
    ("stdout", "no newline yet, "),
    ("stdout", "then one\n"),
    ("stderr", "done\n"),
]


def expected(stream: str) -> str:
    return "".join(text for s, text in CHUNKS if s == stream)


@pytest.mark.parametrize(
    ("log_format", "drop_style"),
    [("gateway", "chunked"), ("plain", "chunked"), ("plain", "close"), ("gateway", "close")],
)
def test_follow_resumes_after_a_drop(stub: Any, cli: Any, log_format: str, drop_style: str) -> None:
    job = stub.add_job(state="succeeded", exit_code=0)
    stub.logs[job["id"]] = CHUNKS
    stub.log_format, stub.drop_style, stub.drop_logs_after = log_format, drop_style, 2
    result = cli("logs", "-f", job["id"])
    assert result.code == 0, result.err
    assert result.out == expected("stdout")
    assert result.err == expected("stderr")
    resumed = [s.headers.get("Last-Event-ID") for s in stub.requests("GET", f"/v1/jobs/{job['id']}/logs")]
    assert resumed[:2] == [None, "2"]
    assert stub.errors == [], stub.errors[
        0
    ]  # the half-sent third event is asked for again, nothing before it


def test_without_follow_prints_what_there_is(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="running")
    stub.logs[job["id"]] = CHUNKS
    result = cli("logs", job["id"])
    assert (result.out, result.err) == (expected("stdout"), expected("stderr"))
    (request,) = stub.requests("GET", f"/v1/jobs/{job['id']}/logs")
    assert request.query["follow"] == ["false"]
    assert request.headers["Accept"] == "text/event-stream"


def test_json_lines(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="succeeded")
    stub.logs[job["id"]] = CHUNKS[:2]
    result = cli("logs", "--json", job["id"])
    pieces = [json.loads(line) for line in result.out.splitlines()]
    assert [(p["stream"], p["data"], p["seq"]) for p in pieces] == [
        ("stdout", "epoch 1\n", 1),
        ("stderr", "warning: slow\n", 2),
    ]


def test_submit_follow_streams_then_exits_with_the_job(
    stub: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = stub.add_job

    def with_output(**fields: Any) -> dict[str, Any]:
        job: dict[str, Any] = original(**{**fields, "state": "failed", "exit_code": 3, "attempt": 1})
        stub.logs[job["id"]] = CHUNKS
        return job

    monkeypatch.setattr(stub, "add_job", with_output)
    result = cli("submit", "--follow", "--", "python", "train.py")
    assert result.code == 3
    assert result.out == expected("stdout")
    assert result.err.startswith("submitted ")
    assert "exit code 3" in result.err
