"""Read commands against the stub gateway: ls paging, watch, status, nodes, artifacts, cancel, rm."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_ls_pages_through_cursors_newest_first(stub: Any, cli: Any) -> None:
    ids = [stub.add_job(name=f"job{i}")["id"] for i in range(5)]  # the stub serves 2 per page
    result = cli("ls", "--all", "--json")
    assert result.code == 0, result.err
    assert [j["id"] for j in json.loads(result.out)] == ids[::-1]
    cursors = [s.query.get("cursor", [None])[0] for s in stub.requests("GET", "/v1/jobs")]
    assert cursors == [None, ids[3], ids[1]]


def test_ls_limit_stops_early_and_says_there_is_more(stub: Any, cli: Any) -> None:
    ids = [stub.add_job(name=f"job{i}", state="running", node="n1")["id"] for i in range(5)]
    result = cli("ls", "--limit", "3")
    assert result.code == 0, result.err
    rows = [line for line in result.out.splitlines() if line.startswith("0190")]
    assert [row.split()[0] for row in rows] == ids[::-1][:3]
    assert "running" in rows[0] and "n1" in rows[0]
    assert "--all" in result.err


def test_ls_filters_are_sent(stub: Any, cli: Any) -> None:
    cli("ls", "--state", "queued,running", "--state", "held", "--label", "team=ml", "--node", "n1")
    (request,) = stub.requests("GET", "/v1/jobs")
    assert request.query["state"] == ["queued", "running", "held"]
    assert request.query["label"] == ["team=ml"]
    assert request.query["node"] == ["n1"]


def progress_event(job_id: str, progress: Any) -> dict[str, Any]:
    return {
        "kind": "progress",
        "job_id": job_id,
        "attempt": 1,
        "at": "2030-01-02T03:04:06Z",
        "progress": progress,
    }


def transition(job_id: str, state: str, previous: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "transition", "job_id": job_id, "state": state, "previous": previous,
            "at": "2030-01-02T03:04:07Z", "attempt": 1, "node": "gpu-1", **extra}  # fmt: skip


def test_watch_renders_progress_and_returns_the_exit_code(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="queued")
    stub.events[job["id"]] = [
        transition(job["id"], "running", "queued"),
        progress_event(job["id"], {"current": 3, "total": 10}),
        {"kind": "progress", "progress": {"percent": 70, "message": "evaluating"}},  # abbreviated
        transition(job["id"], "failed", "running", exit_code=5, reason="exit code 5"),
    ]
    result = cli("watch", job["id"])
    assert result.code == 5
    lines = result.out.splitlines()
    assert f"{job['id']} running on gpu-1 · attempt 1" in lines
    assert "progress 3/10 (30%)" in lines
    assert "progress 70%  evaluating" in lines
    assert "failed" in lines[-1] and "exit code 5" in lines[-1]


def test_watch_succeeded_without_exit_code_is_0_and_cancelled_is_1(stub: Any, cli: Any) -> None:
    done = stub.add_job(state="succeeded", exit_code=None)
    assert cli("watch", done["id"]).code == 0
    cancelled = stub.add_job(state="cancelled", exit_code=None)
    assert cli("watch", cancelled["id"]).code == 1


def test_watch_on_a_terminal_draws_a_bar(stub: Any, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    job = stub.add_job(state="running")
    stub.progress[job["id"]] = {"current": 1, "total": 4}
    stub.events[job["id"]] = [
        progress_event(job["id"], {"current": 4, "total": 4}),
        transition(job["id"], "succeeded", "running", exit_code=0),
    ]
    result = cli("watch", job["id"])
    assert result.code == 0
    assert "4/4 (100%)" in result.out
    assert "━" in result.out


def test_status_panel(stub: Any, cli: Any) -> None:
    job = stub.add_job(
        name="train", state="succeeded", node="gpu-1", attempt=1, exit_code=0,
        started_at="2030-01-02T03:04:10Z", ended_at="2030-01-02T03:06:15Z",
        transitions=[{"state": "queued", "at": "2030-01-02T03:04:05Z"},
                     {"state": "running", "at": "2030-01-02T03:04:10Z", "attempt": 1},
                     {"state": "succeeded", "at": "2030-01-02T03:06:15Z", "attempt": 1, "reason": "exit 0"}],
    )  # fmt: skip
    result = cli("status", job["id"])
    assert result.code == 0, result.err
    for text in ("train", "succeeded", "gpu-1", "1 of 1", "2m05s", "exit code", "exit 0", "true"):
        assert text in result.out
    as_json = json.loads(cli("status", "--json", job["id"]).out)
    assert as_json["id"] == job["id"] and as_json["exit_code"] == 0


def test_status_of_a_queued_job_shows_its_position_and_estimated_start(stub: Any, cli: Any) -> None:
    start = datetime.now(UTC) + timedelta(minutes=2, seconds=30)
    job = stub.add_job(
        state="queued",
        node="gpu-1",
        queue_position=3,
        estimated_start=start.isoformat().replace("+00:00", "Z"),
    )
    result = cli("status", job["id"])
    assert result.code == 0, result.err
    assert "queue position" in result.out and "3" in result.out
    assert "estimated start" in result.out and "in 2m" in result.out


def test_nodes_table_with_slot_bar(stub: Any, cli: Any) -> None:
    stub.nodes = [
        {"name": "gpu-1", "backend": "ssh", "state": "up", "capacity": {"slots": 4, "cpus": 32, "gpus": 4},
         "running": 3, "queued": 2, "queued_seconds": 600.0, "last_heartbeat": "2030-01-02T03:04:05Z"},
    ]  # fmt: skip
    result = cli("nodes")
    assert result.code == 0, result.err
    assert "gpu-1" in result.out and "███░ 3/4" in result.out and "10m00s" in result.out
    assert json.loads(cli("nodes", "--json").out)[0]["capacity"]["slots"] == 4


def test_artifacts_list_and_download(stub: Any, cli: Any, tmp_path: Path) -> None:
    job = stub.add_job(state="succeeded")
    stub.artifacts[job["id"]] = {"model.bin": b"\x00\x01weights", "plots/loss.png": b"png"}
    listing = cli("artifacts", job["id"])
    assert "model.bin" in listing.out and "plots/loss.png" in listing.out
    out = tmp_path / "m.bin"
    result = cli("artifacts", job["id"], "model.bin", "-o", str(out))
    assert result.code == 0, result.err
    assert out.read_bytes() == b"\x00\x01weights"
    result = cli("artifacts", job["id"], "plots/loss.png", "-o", str(tmp_path))
    assert (tmp_path / "loss.png").read_bytes() == b"png"
    missing = cli("artifacts", job["id"], "nope", "-o", str(tmp_path / "nope"))
    assert missing.code == 2 and not (tmp_path / "nope").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_cancel_and_rm(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="running")
    result = cli("cancel", job["id"])
    assert result.code == 0 and "cancelled" in result.out
    result = cli("rm", job["id"])
    assert result.code == 0 and f"deleted {job['id']}" in result.out
    assert job["id"] not in stub.jobs


def test_watch_does_not_repeat_history_a_server_replays(stub: Any, cli: Any) -> None:
    job = stub.add_job(
        state="running",
        transitions=[
            {"state": "queued", "at": "2030-01-02T03:04:05Z"},
            {"state": "running", "at": "2030-01-02T03:04:06Z"},
        ],
    )
    queued = {**transition(job["id"], "queued", None), "at": "2030-01-02T03:04:05Z"}
    running = {**transition(job["id"], "running", "queued"), "at": "2030-01-02T03:04:06Z"}
    stub.events[job["id"]] = [queued, running, transition(job["id"], "succeeded", "running", exit_code=0)]
    result = cli("watch", job["id"])
    assert result.code == 0
    assert [line.split()[1] for line in result.out.splitlines()] == ["running", "succeeded", "succeeded"]


def test_hold_and_release(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="queued")
    result = cli("hold", job["id"])
    assert result.code == 0 and f"{job['id']} held" in result.out
    assert stub.seen[-1].method == "POST" and stub.seen[-1].path == f"/v1/jobs/{job['id']}/hold"
    result = cli("release", job["id"])
    assert result.code == 0 and f"{job['id']} released (now queued)" in result.out
    refused = cli("release", job["id"])  # not held: the server's 409 problem is shown, exit code 2
    assert refused.code == 2 and f"Conflict (409): job {job['id']} is queued" in refused.err


def test_requeue(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="failed", attempt=1)
    result = cli("requeue", job["id"])
    assert result.code == 0 and f"{job['id']} queued again (after attempt 1)" in result.out
    assert stub.seen[-1].method == "POST" and stub.seen[-1].path == f"/v1/jobs/{job['id']}/requeue"
    refused = cli("requeue", job["id"])  # queued, not run yet: the server's 409 problem is shown
    assert refused.code == 2 and f"Conflict (409): job {job['id']} is queued" in refused.err
