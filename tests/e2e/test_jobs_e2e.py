"""One job's whole path through HTTP, the bus, the scheduler and the local executor."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from .conftest import submit, wait_for, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_submit_runs_to_success_with_every_transition_recorded(api):
    r = api.post(
        "/v1/jobs",
        json={"name": "hello", "command": ["sh", "-c", "echo hi; sleep 1; echo done"], "expected_runtime": 5},
    )
    assert r.status_code == 201 and r.headers["location"].endswith(r.json()["id"])
    job = r.json()
    assert job["state"] in ("queued", "starting", "running") and job["name"] == "hello"
    done = wait_state(api, job["id"], "succeeded")
    assert [t["state"] for t in done["transitions"]] == ["queued", "starting", "running", "succeeded"]
    assert done["node"] == "e2e-a" and done["attempt"] == 1 and done["exit_code"] == 0
    times = [t["at"] for t in done["transitions"]]
    assert times == sorted(times) and done["started_at"] <= done["ended_at"]
    logs = api.get(f"/v1/jobs/{job['id']}/logs")
    assert logs.status_code == 200 and logs.text == "hi\ndone\n"


def test_failing_job_reports_its_exit_code_and_stderr(api):
    job = submit(api, command=["sh", "-c", "echo oops >&2; exit 3"], expected_runtime=5)
    done = wait_state(api, job["id"], {"failed", "succeeded"})
    assert done["state"] == "failed" and done["exit_code"] == 3
    assert api.get(f"/v1/jobs/{job['id']}/logs", params={"stream": "stderr"}).text == "oops\n"


def test_progress_and_artifacts(api):
    script = (
        'echo \'{"current": 3, "total": 10}\' > "$JOBWIRE_PROGRESS_FILE"\n'
        "sleep 0.5\n"
        'echo \'{"current": 10, "total": 10}\' > "$JOBWIRE_PROGRESS_FILE"\n'
        'mkdir -p "$JOBWIRE_OUTPUT_DIR/plots"\n'
        'printf "loss,0.1\\n" > "$JOBWIRE_OUTPUT_DIR/metrics.csv"\n'
        'printf "png" > "$JOBWIRE_OUTPUT_DIR/plots/a.png"\n'
        "sleep 0.5\n"
    )
    job = submit(api, script=script, expected_runtime=5)
    wait_state(api, job["id"], "succeeded")
    progress = wait_for(
        lambda: api.get(f"/v1/jobs/{job['id']}/progress").json().get("progress"), what="progress"
    )
    assert progress == {"current": 10, "total": 10}
    arts = {a["name"]: a["size"] for a in api.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]}
    assert arts == {"metrics.csv": 9, "plots/a.png": 3}
    assert api.get(f"/v1/jobs/{job['id']}/artifacts/metrics.csv").content == b"loss,0.1\n"
    assert api.get(f"/v1/jobs/{job['id']}/artifacts/plots/a.png").content == b"png"
    missing = api.get(f"/v1/jobs/{job['id']}/artifacts/nope.txt")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_follow_streams_logs_live_and_ends_with_the_job(api, stack):
    job = submit(
        api, command=["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done"], expected_runtime=5
    )
    seen: list[tuple[float, str]] = []
    t0 = time.monotonic()
    with (
        httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c,
        c.stream("GET", f"/v1/jobs/{job['id']}/logs", params={"follow": "true"}) as r,
    ):
        assert r.status_code == 200
        for text in r.iter_text():
            seen.append((time.monotonic() - t0, text))
    body = "".join(t for _, t in seen)
    assert body == "".join(f"line {i}\n" for i in range(1, 6))
    assert seen[0][0] < seen[-1][0] - 0.5  # text arrived while the job ran, not all at the end
    assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "succeeded"


def _sse(client: httpx.Client, url: str, headers: dict | None = None, limit: int | None = None) -> list[dict]:
    events, current = [], {}
    with client.stream("GET", url, headers={"accept": "text/event-stream", **(headers or {})}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line == "":
                if current:
                    events.append(current)
                    current = {}
                    if limit and len(events) >= limit:
                        break
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[key] = current[key] + "\n" + value if key == "data" and key in current else value
    return events


def test_sse_logs_resume_from_last_event_id_without_gaps_or_repeats(api, stack):
    job = submit(
        api, command=["sh", "-c", "for i in 1 2 3 4 5 6; do echo n$i; sleep 0.2; done"], expected_runtime=5
    )
    url = f"/v1/jobs/{job['id']}/logs?follow=true"
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c:
        first = _sse(c, url, limit=2)
        rest = _sse(c, url, headers={"last-event-id": first[-1]["id"]})
    assert rest[-1]["event"] == "end"
    chunks = [(int(e["id"]), json.loads(e["data"])) for e in first + rest if e.get("event") == "log"]
    ids = [i for i, _ in chunks]
    assert ids == sorted(set(ids))  # no repeats across the reconnect
    text = "".join(c.get("data", "") for _, c in chunks if c["stream"] == "stdout")
    assert text == "".join(f"n{i}\n" for i in range(1, 7))  # and no gaps


def test_events_stream_lists_every_transition_as_json(api, stack):
    job = submit(api, command=["true"], expected_runtime=2)
    wait_state(api, job["id"], "succeeded")
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c:
        events = _sse(c, f"/v1/jobs/{job['id']}/events")
    transitions = [json.loads(e["data"]) for e in events if e.get("event") == "transition"]
    assert [t["state"] for t in transitions] == ["queued", "starting", "running", "succeeded"]
    assert all(t["job_id"] == job["id"] for t in transitions)


def _fill_slots(api, n=2) -> list[str]:
    ids = [submit(api, command=["sleep", "30"], expected_runtime=30)["id"] for _ in range(n)]
    for i in ids:
        wait_state(api, i, "running")
    return ids


def test_cancel_queued_at_once_and_running_kills_the_process_group(api):
    blockers = _fill_slots(api)
    queued = submit(api, command=["true"], expected_runtime=1)
    assert api.get(f"/v1/jobs/{queued['id']}").json()["queue_position"] == 0
    r = api.post(f"/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"

    parent = blockers[0]
    api.post(f"/v1/jobs/{parent}/cancel")
    wait_state(api, parent, "cancelled")
    # the process group of a job with a child: start one, read the child's pid from its log, cancel, check
    job = submit(api, command=["sh", "-c", "sleep 300 & echo child=$!; wait"], expected_runtime=30)
    wait_state(api, job["id"], "running")
    text = wait_for(
        lambda: "child=" in (t := api.get(f"/v1/jobs/{job['id']}/logs").text) and t, what="child pid"
    )
    child = int(text.split("child=")[1].split()[0])
    assert _alive(child)
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code in (200, 202)
    done = wait_state(api, job["id"], "cancelled")
    assert done["exit_code"] is None or done["exit_code"] != 0
    wait_for(lambda: not _alive(child), timeout=10, what="the child process to be gone")
    api.post(f"/v1/jobs/{blockers[1]}/cancel")
    wait_state(api, blockers[1], "cancelled")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie waits for PID 1 to reap it
    except FileNotFoundError:
        return False


def test_cancelling_a_finished_job_is_a_conflict(api):
    job = submit(api, command=["true"], expected_runtime=1)
    wait_state(api, job["id"], "succeeded")
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 409 and "succeeded" in body["detail"]


def test_walltime_kills_the_job_as_timed_out(api):
    job = submit(api, command=["sleep", "60"], resources={"walltime": 1}, expected_runtime=1)
    done = wait_state(api, job["id"], {"timed_out", "failed", "succeeded"}, timeout=30)
    assert done["state"] == "timed_out"


def test_expected_runtime_without_walltime_times_out_at_twice_it(api):
    job = submit(api, command=["sleep", "60"], expected_runtime=0.5)
    started = time.monotonic()
    done = wait_state(api, job["id"], {"timed_out", "failed", "succeeded"}, timeout=30)
    assert done["state"] == "timed_out" and time.monotonic() - started < 20


def test_delete_removes_job_logs_artifacts_and_files(api, stack):
    job = submit(
        api,
        command=["sh", "-c", 'echo bye; echo x > "$JOBWIRE_OUTPUT_DIR/o.txt"'],
        env={"API_KEY": "not-for-after-the-delete"},
        expected_runtime=2,
    )
    wait_state(api, job["id"], "succeeded")
    job_dir = stack.home / "executors" / "e2e-a" / "jobs" / job["id"]
    own_dir = stack.home / "executors" / "e2e-a" / ".executor" / "jobs" / job["id"]
    assert b"not-for-after-the-delete" in (own_dir / "1" / "run.json").read_bytes()
    assert (job_dir / "1" / "outputs" / "o.txt").exists()
    r = api.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code in (202, 204)
    wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").status_code == 404, what="the job to be gone")
    assert api.get(f"/v1/jobs/{job['id']}/logs").status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}/artifacts/o.txt").status_code == 404
    # the job's directory on the node's storage, and the executor's (run.json, its environment)
    wait_for(lambda: not job_dir.exists() and not own_dir.exists(), 10, what=f"{job_dir} to be removed")


def test_delete_of_a_running_job_cancels_it_first(api, stack):
    job = submit(api, command=["sleep", "30"], expected_runtime=30)
    wait_state(api, job["id"], "running")
    assert api.delete(f"/v1/jobs/{job['id']}").status_code in (202, 204)
    wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").status_code == 404, what="the job to be gone")
    job_dir = stack.home / "executors" / "e2e-a" / "jobs" / job["id"]
    wait_for(lambda: not job_dir.exists(), 10, what=f"{job_dir} to be removed")


def test_list_filters_and_pagination(api):
    mine = [
        submit(api, command=["true"], name="paged", labels={"batch": "p1"}, expected_runtime=1)["id"]
        for _ in range(5)
    ]
    for i in mine:
        wait_state(api, i, "succeeded")
    seen, cursor = [], None
    while True:
        params = {"name": "paged", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(mine, reverse=True)
    by_label = api.get("/v1/jobs", params={"label": "batch=p1", "state": "succeeded"}).json()["items"]
    assert {j["id"] for j in by_label} == set(mine)
    assert api.get("/v1/jobs", params={"label": "batch=nope"}).json()["items"] == []


def test_nodes_health_ready_and_openapi(api):
    nodes = api.get("/v1/nodes").json()["items"]
    assert [n["name"] for n in nodes] == ["e2e-a"]
    assert nodes[0]["state"] == "up" and nodes[0]["capacity"]["slots"] == 2 and nodes[0]["backend"] == "local"
    assert api.get("/health").status_code == 200 and api.get("/ready").status_code == 200
    schema = api.get("/schema/openapi.json").json()
    assert "/v1/jobs" in schema["paths"] and "/v1/jobs/{job_id}/logs" in str(schema["paths"])


def test_events_are_plain_json_for_any_nats_client(api, stack):
    """Speak the raw NATS protocol over a socket, as `nats sub 'jobwire.evt.>'` would."""
    host, port = stack.nats_url.removeprefix("nats://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.recv(4096)  # INFO
    sock.sendall(b'CONNECT {"verbose":false}\r\nSUB jobwire.evt.> 1\r\nPING\r\n')
    buf = b""
    while b"PONG" not in buf:
        buf += sock.recv(4096)
    job = submit(api, command=["true"], expected_runtime=1)
    wait_state(api, job["id"], "succeeded")
    deadline = time.monotonic() + 10
    payloads = []
    buf = b""
    while time.monotonic() < deadline and len([p for p in payloads if p.get("job_id") == job["id"]]) < 4:
        buf += sock.recv(65536)
        while b"\r\n" in buf:
            line, rest = buf.split(b"\r\n", 1)
            if line.startswith(b"MSG "):
                size = int(line.split()[-1])
                if len(rest) < size + 2:
                    break
                payloads.append(json.loads(rest[:size]))
                buf = rest[size + 2 :]
            elif line == b"PING":
                sock.sendall(b"PONG\r\n")
                buf = rest
            else:
                buf = rest
    sock.close()
    mine = [p for p in payloads if p.get("job_id") == job["id"] and p.get("kind") == "transition"]
    assert [p["state"] for p in mine] == ["queued", "starting", "running", "succeeded"]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "fragment"),
    [
        (b"{not json", "application/json", 400, "JSON"),
        (b'{"command": ["x"], "colour": "red"}', "application/json", 422, "colour"),
        (b'{"command": ["x"], "resources": {"gpus": -1}}', "application/json", 422, "gpus"),
        (b'{"command": ["x"], "resources": {"memory": "lots"}}', "application/json", 422, "size"),
        (b'{"name": "no-command"}', "application/json", 422, "exactly one of"),
        (b'{"command": ["x"], "max_attempts": 1000}', "application/json", 422, "max_attempts"),
        (b'{"command": "echo hi"}', "application/json", 422, "command"),
        (b"[1, 2]", "application/json", 422, "object"),
    ],
)
def test_bad_input_gets_problem_json_and_changes_nothing(api, body, ctype, status, fragment):
    before = len(api.get("/v1/jobs", params={"limit": 500}).json()["items"])
    r = api.post("/v1/jobs", content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == status and problem["title"] and fragment in problem.get("detail", "")
    assert len(api.get("/v1/jobs", params={"limit": 500}).json()["items"]) == before


def test_unknown_job_and_oversized_body(api):
    r = api.get("/v1/jobs/01a20163-4fc4-7d73-8248-e76e60589154")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    big = {"command": ["x"], "env": {"A": "x" * (2 * 1024 * 1024)}}
    r = api.post("/v1/jobs", json=big)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
    assert api.get("/v1/nope").status_code == 404


def test_env_and_hostile_arguments_arrive_as_data(api):
    hostile = ["a b", "'; rm -rf / #", "$(id)", "`id`", "x\ny", '"q"']
    job = submit(api, command=["printf", "%s|", *hostile], env={"HOSTILE": "$(id);`id`"}, expected_runtime=2)
    wait_state(api, job["id"], "succeeded")
    assert api.get(f"/v1/jobs/{job['id']}/logs").text == "|".join(hostile) + "|"
    job = submit(
        api, command=["sh", "-c", 'printf %s "$HOSTILE"'], env={"HOSTILE": "$(id);`id`"}, expected_runtime=2
    )
    wait_state(api, job["id"], "succeeded")
    assert api.get(f"/v1/jobs/{job['id']}/logs").text == "$(id);`id`"


def test_scheduler_and_executor_are_discoverable_as_nats_micro_services(stack):
    """What `nats micro ls` shows: a PING on $SRV.PING answered by each service."""
    import asyncio

    import nats

    async def ping() -> list[dict]:
        nc = await nats.connect(stack.nats_url)
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.PING", b"", reply=inbox)
        out = []
        try:
            while True:
                msg = await sub.next_msg(timeout=1)
                out.append(json.loads(msg.data))
        except Exception:
            pass
        await nc.close()
        return out

    names = {s["name"] for s in asyncio.run(ping())}
    assert {"jobwire-scheduler", "jobwire-executor"} <= names
