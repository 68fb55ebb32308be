"""Jobs that can never run are refused at submit; jobs that wait say why (issue 13), on the real stack:
nats-server, scheduler, gateway and two local executors as processes, one of them stopped (down)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("feasible"),
        [
            ExecutorConfig(node="loc-a", slots=1, env={"JOBWIRE_EXECUTOR_CPUS": "2"}),
            ExecutorConfig(node="loc-b", slots=1, env={"JOBWIRE_EXECUTOR_CPUS": "4"}),
        ],
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(two_nodes: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=two_nodes.api_url, headers=two_nodes.auth_headers, timeout=30) as client:

        def up() -> set[str]:
            return {n["name"] for n in client.get("/v1/nodes").json()["items"] if n["state"] == "up"}

        wait_for(lambda: up() == {"loc-a", "loc-b"}, 30, what="both local nodes up")
        yield client


def refused(api: httpx.Client, spec: dict, path: str) -> str:
    r = api.post("/v1/jobs", json={"command": ["true"], **spec})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["path"] == path, body
    return str(body["detail"])


def test_jobs_no_node_could_ever_run_are_refused_at_submit(api):
    assert "needs 1 GPU; no node has GPUs" in refused(api, {"resources": {"gpus": 1}}, "$.resources.gpus")
    detail = refused(api, {"resources": {"nodes": 3}}, "$.resources.nodes")
    assert "needs 3 nodes of one backend that runs gangs" in detail
    assert "the most is 2 of backend local" in detail
    assert "no node named 'dock-zz'; known: loc-a, loc-b" in refused(api, {"node": "dock-zz"}, "$.node")
    detail = refused(api, {"resources": {"cpus": 8}}, "$.resources.cpus")
    assert "needs 8 CPUs; the most any node has is 4 (loc-b)" in detail
    detail = refused(api, {"image": "python:3.11-slim"}, "$.image")
    assert "no node runs images" in detail
    r = api.post(
        "/v1/jobs",
        content=b'{"command":["true"],"resources":{"memory":1e35}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["path"] == "$.resources.memory", r.text
    r = api.post("/v1/jobs", json={"command": ["true"], "resources": {"memory": "9999999999T"}})
    assert r.status_code == 422 and "at most 1 EiB" in r.json()["detail"], r.text
    assert api.get("/v1/jobs").json()["items"] == []  # nothing was queued


def test_the_cli_shows_the_refusal(two_nodes, api):
    out = jobwire(two_nodes, "submit", "--gpus", "2", "--", "nvidia-smi")
    assert out.returncode != 0
    assert "(422): needs 2 GPUs; no node has GPUs" in out.stderr + out.stdout, out
    assert api.get("/v1/jobs").json()["items"] == []


def jobwire(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a pipe, against the stack."""
    env = {**os.environ, "JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or "", "COLUMNS": "200"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("jobwire")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_job_that_fits_runs_and_shows_no_invented_expected_runtime(api):
    job = submit(api, command=["true"])
    done = wait_state(api, job["id"], "succeeded")
    assert done["expected_runtime"] is None
    timed = wait_state(api, submit(api, command=["true"], expected_runtime=7)["id"], "succeeded")
    assert timed["expected_runtime"] == 7


def test_a_job_pinned_to_a_down_node_waits_with_the_reason_then_runs(two_nodes, api):
    two_nodes.services["executor-loc-b"].stop()
    wait_for(
        lambda: any(
            n["name"] == "loc-b" and n["state"] == "down" for n in api.get("/v1/nodes").json()["items"]
        ),
        30,
        what="loc-b down",
    )
    job = submit(api, command=["true"], node="loc-b")
    assert job["node"] == "loc-b" and job["state"] == "queued"
    shown = api.get(f"/v1/jobs/{job['id']}").json()
    assert shown["node"] == "loc-b"
    assert re.fullmatch(r"node loc-b is down since \d\d:\d\d:\d\d UTC", shown["reason"]), shown
    # 4 CPUs only loc-b has: it also waits for loc-b rather than being refused
    big = submit(api, command=["true"], resources={"cpus": 3})
    assert api.get(f"/v1/jobs/{big['id']}").json()["reason"].startswith("node loc-b is down since")

    out = jobwire(two_nodes, "status", job["id"])
    assert out.returncode == 0, out.stderr
    assert "node loc-b is down since" in out.stdout, out.stdout

    two_nodes.start_service("executor-loc-b")
    for j in (job, big):
        assert wait_state(api, j["id"], "succeeded", timeout=60)["node"] == "loc-b"


def test_jobs_behind_a_busy_node_say_how_many_wait_ahead(api):
    blocker = submit(api, command=["sleep", "30"], node="loc-a")
    wait_state(api, blocker["id"], "running")
    behind = [submit(api, command=["true"], node="loc-a") for _ in range(2)]
    try:
        reasons = [api.get(f"/v1/jobs/{j['id']}").json()["reason"] for j in behind]
        assert reasons == [
            "node loc-a is busy; nothing waits ahead of it",
            "node loc-a is busy; 1 job ahead of it on loc-a",
        ]
    finally:
        for j in [blocker, *behind]:
            api.post(f"/v1/jobs/{j['id']}/cancel")
