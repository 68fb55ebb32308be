"""Workflows on the real stack (nats-server, scheduler, local executor, gateway as processes) and the
real ``jobwire`` CLI: a diamond runs in order, a failed root cancels what comes after it with reasons,
a cycle is refused, and a scheduler killed mid-DAG loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack

from .conftest import make_stack, wait_for, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def flow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("flows"), [ExecutorConfig(node="flow-a", slots=4)])
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(flow_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=flow_stack.api_url, headers=flow_stack.auth_headers, timeout=30) as client:
        yield client


def cli(stack: Stack, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update({"JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or ""})
    r = subprocess.run(
        [sys.executable, "-m", "jobwire.client.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode == 0) is ok, (args, r.stdout, r.stderr)
    return r


def diamond_yaml(path: Path, *, a: str = "sleep 1", b: str = "sleep 0.5") -> Path:
    path.write_text(
        f"""\
name: diamond
jobs:
  - name: d
    command: [sh, -c, "echo d"]
    expected_runtime: 5
    after: [{{job: b}}, {{job: c}}]
  - name: b
    command: [sh, -c, "{b}"]
    expected_runtime: 5
    after: [{{job: a}}]
  - name: c
    command: [sh, -c, "{b}"]
    expected_runtime: 5
    after: [{{job: a}}]
  - name: a
    command: [sh, -c, "{a}"]
    expected_runtime: 5
"""
    )
    return path


def jobs_of(api: httpx.Client, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: api.get(f"/v1/jobs/{job_id}").json() for name, job_id in ids.items()}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def started(job: dict[str, Any]) -> str:
    return next(t["at"] for t in job["transitions"] if t["state"] == "starting")


def test_a_diamond_runs_in_order_and_the_cli_draws_it(flow_stack, api, tmp_path):
    gate = tmp_path / "go"  # a runs until the test has looked at the waiting jobs
    a = f"while [ ! -e {gate} ]; do sleep 0.1; done"
    out = cli(flow_stack, "workflow", "submit", str(diamond_yaml(tmp_path / "d.yaml", a=a)), "--json")
    done = json.loads(out.stdout)
    ids = done["jobs"]
    assert done["accepted"] and set(ids) == {"a", "b", "c", "d"}
    waiting = api.get(f"/v1/jobs/{ids['b']}").json()
    assert waiting["state"] == "queued" and waiting["reason"] == f"waiting for {ids['a']} to succeed"
    drawn = cli(flow_stack, "workflow", "show", done["id"]).stdout
    assert "waiting for a to succeed" in drawn and "◀ b, c" in drawn
    gate.touch()
    wait_state(api, ids["d"], "succeeded", timeout=60)
    jobs = jobs_of(api, ids)
    assert all(j["state"] == "succeeded" and j["attempt"] == 1 for j in jobs.values())
    assert started(jobs["b"]) >= jobs["a"]["ended_at"] and started(jobs["c"]) >= jobs["a"]["ended_at"]
    assert started(jobs["d"]) >= max(jobs["b"]["ended_at"], jobs["c"]["ended_at"])
    apart = abs((at(started(jobs["b"])) - at(started(jobs["c"]))).total_seconds())
    assert apart < 1.0  # b and c (0.5 s each) ran side by side, not one after the other
    assert done["id"] in cli(flow_stack, "workflow", "ls").stdout
    shown = json.loads(cli(flow_stack, "workflow", "show", done["id"], "--json").stdout)
    assert shown["counts"] == {"succeeded": 4} and shown["jobs"][0]["name"] == "a"
    drawn = cli(flow_stack, "workflow", "show", done["id"]).stdout
    lines = {line.split("● ", 1)[1].split()[0]: line for line in drawn.splitlines() if "● " in line}
    assert set(lines) == {"a", "b", "c", "d"} and all("succeeded" in line for line in lines.values())


def test_a_failed_root_cancels_the_rest_at_once_with_reasons(flow_stack, api, tmp_path):
    spec = diamond_yaml(tmp_path / "f.yaml", a="echo broken >&2; exit 3")
    done = json.loads(cli(flow_stack, "workflow", "submit", str(spec), "--json").stdout)
    ids = done["jobs"]
    wait_state(api, ids["d"], "cancelled", timeout=60)
    jobs = jobs_of(api, ids)
    assert jobs["a"]["state"] == "failed" and jobs["a"]["exit_code"] == 3
    assert jobs["b"]["reason"] == jobs["c"]["reason"] == f"dependency {ids['a']} failed"
    assert jobs["d"]["reason"] in (f"dependency {ids[n]} was cancelled" for n in "bc")
    for n in "bcd":
        assert jobs[n]["state"] == "cancelled" and jobs[n]["started_at"] is None and jobs[n]["attempt"] == 0
    drawn = cli(flow_stack, "workflow", "show", done["id"]).stdout
    assert "dependency a failed" in drawn


def test_a_cycle_is_refused_by_the_api_and_the_cli(flow_stack, api, tmp_path):
    cycle = {
        "jobs": [
            {"name": "x", "command": ["true"], "after": [{"job": "z"}]},
            {"name": "y", "command": ["true"], "after": [{"job": "x"}]},
            {"name": "z", "command": ["true"], "after": [{"job": "y"}]},
        ]
    }
    r = api.post("/v1/workflows", json=cycle)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "cycle" in r.json()["detail"] and all(f"'{n}'" in r.json()["detail"] for n in "xyz")
    path = tmp_path / "cycle.json"
    path.write_text(json.dumps(cycle))
    refused = cli(flow_stack, "workflow", "submit", str(path), ok=False)
    assert refused.returncode == 2 and "cycle" in refused.stderr


def test_a_scheduler_killed_mid_dag_loses_nothing(flow_stack, api, tmp_path):
    spec = diamond_yaml(tmp_path / "r.yaml", a="sleep 3", b="sleep 1")
    done = json.loads(cli(flow_stack, "workflow", "submit", str(spec), "--json").stdout)
    ids = done["jobs"]
    wait_state(api, ids["a"], "running", timeout=60)
    flow_stack.services["scheduler"].kill()  # SIGKILL while a runs and b, c, d wait
    time.sleep(1.0)
    flow_stack.start_service("scheduler")
    wait_for(
        lambda: api.get(f"/v1/jobs/{ids['b']}").json()["state"] != "queued", timeout=60, what="b to start"
    )
    flow_stack.services["scheduler"].kill()  # and again while b and c run
    time.sleep(1.0)
    flow_stack.start_service("scheduler")
    wait_state(api, ids["d"], "succeeded", timeout=90)
    jobs = jobs_of(api, ids)
    assert all(j["state"] == "succeeded" and j["attempt"] == 1 for j in jobs.values())
    assert started(jobs["d"]) >= max(jobs["b"]["ended_at"], jobs["c"]["ended_at"])
    assert min(started(jobs["b"]), started(jobs["c"])) >= jobs["a"]["ended_at"]
