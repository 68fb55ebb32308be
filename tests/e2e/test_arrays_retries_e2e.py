"""Arrays and retries through the whole stack: HTTP, the bus, the scheduler and two local executors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
END = {"succeeded", "failed", "cancelled", "timed_out"}
TINY = {"cpus": 0.01}


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("arrays"),
        [ExecutorConfig(node="arr-a", slots=40), ExecutorConfig(node="arr-b", slots=40)],
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(two: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=two.api_url, headers=two.auth_headers, timeout=60) as client:
        wait_for(lambda: len(client.get("/v1/nodes").json()["items"]) == 2, what="two nodes")
        yield client


def array(api: httpx.Client, array_id: str, **params: Any) -> dict[str, Any]:
    r = api.get(f"/v1/arrays/{array_id}", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def most_at_once(lines: list[str]) -> int:
    """The most tasks between their start and end line at any moment (``s|e INDEX NANOSECONDS``)."""
    marks = sorted((int(ns), 1 if kind == "s" else -1) for kind, _, ns in (ln.split() for ln in lines))
    most = now = 0
    for _, step in marks:
        now += step
        most = max(most, now)
    return most


def test_1000_no_op_tasks_with_parallelism_50_all_succeed_never_more_than_50_at_once(api, tmp_path: Path):
    trace = tmp_path / "trace"
    fields = "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N) $JOBWIRE_ARRAY_ID $JOBWIRE_ARRAY_COUNT"
    line = f'echo "{fields}" >> {trace}'
    script = f"set -- s; {line}; sleep 0.05; set -- e; {line}\n"
    r = api.post(
        "/v1/jobs",
        json={
            "script": script,
            "resources": TINY,
            "expected_runtime": 1,
            "array": {"count": 1000, "parallelism": 50},
        },
    )
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    assert r.headers["location"] == f"/v1/arrays/{aid}" and r.json()["array"]["count"] == 1000
    seen_running = 0

    def done() -> bool:
        nonlocal seen_running
        view = array(api, aid, limit=1)
        seen_running = max(seen_running, view["counts"]["running"] + view["counts"]["starting"])
        return bool(view["done"])

    wait_for(done, timeout=600, every=0.5, what="the array to finish")
    view = array(api, aid, limit=1000)
    assert view["counts"]["succeeded"] == 1000 and sum(view["counts"].values()) == 1000
    assert view["materialised"] == 1000 and view["next_cursor"] is None
    assert [t["index"] for t in view["tasks"]] == list(range(1000))
    assert {t["state"] for t in view["tasks"]} == {"succeeded"}
    assert seen_running <= 50
    lines = trace.read_text().splitlines()
    fields = [ln.split() for ln in lines]
    assert sorted(int(f[1]) for f in fields if f[0] == "s") == list(range(1000))  # each index once
    assert {(f[3], f[4]) for f in fields} == {(aid, "1000")}
    assert most_at_once([" ".join(f[:3]) for f in fields]) <= 50
    task = api.get(f"/v1/jobs/{view['tasks'][7]['job_id']}").json()
    assert (task["array_id"], task["array_index"], task["state"]) == (aid, 7, "succeeded")


def test_100000_tasks_are_accepted_in_one_request_within_2_s_and_cancelled_whole(api):
    began = time.perf_counter()
    r = api.post(
        "/v1/jobs",
        json={"command": ["sleep", "30"], "resources": TINY, "array": {"count": 100_000, "parallelism": 5}},
    )
    took = time.perf_counter() - began
    assert r.status_code == 201, r.text
    assert took < 2.0, f"accepting 100,000 tasks took {took:.2f} s"
    aid = r.json()["id"]
    wait_for(lambda: array(api, aid, limit=1)["counts"]["running"] >= 1, what="a task running")
    view = array(api, aid, limit=3, cursor="99996")
    assert [t["index"] for t in view["tasks"]] == [99997, 99998, 99999] and view["next_cursor"] is None
    assert view["materialised"] <= 5 and sum(view["counts"].values()) == 100_000
    assert view["counts"]["queued"] >= 100_000 - 5
    r = api.post(f"/v1/arrays/{aid}/cancel")
    assert r.status_code == 200 and r.json()["cancelled"], r.text
    view = wait_for(lambda: (v := array(api, aid, limit=1))["done"] and v, timeout=60, what="cancelled")
    assert view["counts"]["cancelled"] == 100_000 and view["materialised"] <= 5
    assert api.post(f"/v1/arrays/{aid}/cancel").status_code == 409
    assert api.get(f"/v1/arrays/{'0' * 8}-0000-7000-8000-{'0' * 12}").status_code == 404


def test_hold_and_release_a_whole_array(api):
    r = api.post(
        "/v1/jobs", json={"command": ["true"], "resources": TINY, "array": {"count": 30, "parallelism": 2}}
    )
    aid = r.json()["id"]
    held = api.post(f"/v1/arrays/{aid}/hold")
    assert held.status_code == 200 and held.json()["held"], held.text
    time.sleep(1.5)
    frozen = array(api, aid, limit=1)["counts"]
    time.sleep(1.5)
    assert array(api, aid, limit=1)["counts"] == frozen and frozen["succeeded"] < 30
    assert api.post(f"/v1/arrays/{aid}/release").status_code == 200
    view = wait_for(lambda: (v := array(api, aid, limit=1))["done"] and v, timeout=120, what="done")
    assert view["counts"]["succeeded"] == 30


def test_a_job_failing_twice_then_succeeding_ends_succeeded_with_3_attempts(api, tmp_path: Path):
    count = tmp_path / "attempts"
    script = (
        f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {count}\n"
        'echo "attempt $n ($JOBWIRE_ATTEMPT)"\n'
        '[ "$n" -ge 3 ] || exit 5\n'
    )
    job = submit(api, script=script, resources=TINY, retry={"attempts": 3, "backoff": 0.5})
    assert job["max_attempts"] == 3
    done = wait_state(api, job["id"], END, timeout=60)
    assert (done["state"], done["attempt"], done["exit_code"]) == ("succeeded", 3, 0)
    assert count.read_text().strip() == "3"
    tried = [(a["attempt"], a["state"], a["exit_code"]) for a in done["attempts"]]
    assert tried == [(1, "failed", 5), (2, "failed", 5), (3, "succeeded", 0)]
    assert all(a["node"] in ("arr-a", "arr-b") and a["ended_at"] for a in done["attempts"])
    states = [t["state"] for t in done["transitions"]]
    assert states.count("failed") == 2 and states[-1] == "succeeded"
    for n in (1, 2, 3):
        text = api.get(f"/v1/jobs/{job['id']}/logs", params={"attempt": n}).text
        assert text == f"attempt {n} ({n})\n"


def jobwire(stack: Stack, *args: str) -> str:
    env = {**os.environ, "JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or ""}
    argv = [sys.executable, "-m", "jobwire.client.cli", *args]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_the_cli_submits_an_array_like_sbatch_and_shows_and_cancels_it(api, two: Stack):
    out = jobwire(two, "submit", "--array", "3-12%2", "--cpus", "0.01", "--", "sh", "-c", "exit 0")
    assert "10 tasks (3-12, at most 2 at once)" in out
    aid = out.split()[2].rstrip(":")
    view = wait_for(lambda: (v := array(api, aid))["done"] and v, timeout=120, what="the CLI's array")
    assert [t["index"] for t in view["tasks"]] == list(range(3, 13)) and view["counts"]["succeeded"] == 10
    shown = json.loads(jobwire(two, "array", aid, "--json"))
    assert shown["counts"]["succeeded"] == 10 and shown["done"]
    assert "succeeded  10" in jobwire(two, "array", aid)
    out = jobwire(
        two, "submit", "--array", "0-4", "--cpus", "0.01", "--", "sh", "-c", '[ "$JOBWIRE_ARRAY_INDEX" != 2 ]'
    )
    mixed = out.split()[2].rstrip(":")
    view = wait_for(lambda: (v := array(api, mixed))["done"] and v, timeout=120, what="the mixed array")
    assert (view["counts"]["succeeded"], view["counts"]["failed"]) == (4, 1)
    failed = array(api, mixed, state="failed")["tasks"]
    assert [(t["index"], t["exit_code"]) for t in failed] == [(2, 1)]
    assert f"[2] failed exit 1 {failed[0]['job_id']}" in jobwire(two, "array", mixed, "--state", "failed")
    out = jobwire(two, "submit", "--array", "0-99%1", "--cpus", "0.01", "--", "sleep", "5")
    other = out.split()[2].rstrip(":")
    head = jobwire(two, "array", other, "cancel").splitlines()[0]
    assert "cancelled" in head.rsplit("(", 1)[1]  # "(cancelled)", or "(cancelled, done)" once ended


def test_a_lost_nodes_job_is_retried_on_the_other_node(api, two: Stack):
    job = submit(
        api,
        command=["sh", "-c", "sleep 4; echo attempt $JOBWIRE_ATTEMPT"],
        resources=TINY,
        expected_runtime=5,
        retry={"attempts": 2, "on": ["lost"]},
    )
    victim = wait_state(api, job["id"], "running")["node"]
    two.services[f"executor-{victim}"].kill()
    done = wait_state(api, job["id"], END, timeout=60)
    assert done["state"] == "succeeded" and done["node"] != victim
    tried = [(a["attempt"], a["state"], a["node"]) for a in done["attempts"]]
    assert tried == [(1, "lost", victim), (2, "succeeded", done["node"])]
