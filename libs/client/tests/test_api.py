"""The Python client on its own, against the stub gateway."""

from typing import Any

import pytest

from jobwire.client.api import JobwireClient
from jobwire.client.errors import ApiError, ConnectionFailed, WaitTimeout
from jobwire.contracts import v1

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stub: Any) -> Any:
    with JobwireClient(stub.url, token="tok") as c:
        yield c


def test_submit_decodes_the_job_and_reports_202(stub: Any, client: JobwireClient) -> None:
    job = client.submit(v1.JobSpec(command=["echo", "hi"]), idempotency_key="k1")
    assert isinstance(job, v1.Job) and job.command == ["echo", "hi"] and job.state is v1.JobState.QUEUED
    assert stub.seen[-1].headers["Idempotency-Key"] == "k1"
    stub.submit_status = 202
    assert client.submit_detailed(v1.JobSpec(command=["x"])).accepted is False


def test_problem_becomes_api_error(client: JobwireClient) -> None:
    with pytest.raises(ApiError) as info:
        client.get("nope")
    assert (info.value.status, info.value.title, info.value.detail) == (404, "Job not found", "no job nope")


def test_iter_jobs_follows_cursors(stub: Any, client: JobwireClient) -> None:
    ids = [stub.add_job()["id"] for _ in range(5)]
    assert [j.id for j in client.iter_jobs()] == ids[::-1]
    assert [j.id for j in client.iter_jobs(limit=3)] == ids[::-1][:3]


def test_follow_logs_yields_each_piece_once_with_its_sequence(stub: Any, client: JobwireClient) -> None:
    job = stub.add_job(state="succeeded")
    stub.logs[job["id"]] = [("stdout", f"line {i}\n") for i in range(6)]
    stub.drop_logs_after = 3
    pieces = list(client.follow_logs(job["id"]))
    assert [(p.seq, p.data) for p in pieces] == [(i + 1, f"line {i}\n") for i in range(6)]
    assert list(client.follow_logs(job["id"], offset=4)) == pieces[4:]


def test_events_progress_and_wait(stub: Any, client: JobwireClient) -> None:
    job = stub.add_job(state="running")
    assert client.progress(job["id"]) is None
    stub.progress[job["id"]] = {"percent": 50}
    progress = client.progress(job["id"])
    assert progress is not None and progress.progress == {"percent": 50}
    with pytest.raises(WaitTimeout):
        client.wait(job["id"], timeout=0.1)
    stub.events[job["id"]] = [
        {"kind": "transition", "job_id": job["id"], "state": "succeeded", "previous": "running",
         "at": "2030-01-02T03:04:07Z", "exit_code": 0},
        {"kind": "someday-new", "x": 1},
    ]  # fmt: skip
    events = list(client.events(job["id"]))
    assert [type(e) for e in events] == [v1.JobTransitioned]
    assert client.wait(job["id"], timeout=1).state is v1.JobState.SUCCEEDED


def test_nodes_and_artifacts_accept_items_or_bare_lists(stub: Any, client: JobwireClient) -> None:
    stub.nodes = [{"name": "n1", "backend": "local", "state": "up", "capacity": {"slots": 2}}]
    (node,) = client.nodes()
    assert isinstance(node, v1.NodeView) and node.capacity.slots == 2
    job = stub.add_job()
    stub.artifacts[job["id"]] = {"a.txt": b"abc"}
    assert client.artifacts(job["id"]) == [v1.Artifact(name="a.txt", size=3)]


def test_connection_refused(closed_port: int) -> None:
    with JobwireClient(f"http://127.0.0.1:{closed_port}") as c, pytest.raises(ConnectionFailed) as info:
        c.nodes()
    assert info.value.url == f"http://127.0.0.1:{closed_port}"


def test_repr_hides_the_token() -> None:
    client = JobwireClient("http://x", token="very-secret")
    assert "very-secret" not in repr(client)
