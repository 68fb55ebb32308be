"""Gang jobs on three local executor nodes (three executor processes): the ranks start together,
meet at rank 0's MASTER_ADDR:MASTER_PORT and exchange their ranks; one rank killed stops the others
and fails the job naming it."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack
from tests.fixtures.postgres import _admin as admin
from tests.fixtures.postgres import _run as run_admin
from tests.support.gang import RENDEZVOUS, gone, met

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gang_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Three local executor nodes of one slot each, on SQLite and on PostgreSQL (jobs.gang is kept in
    both)."""
    nodes = [ExecutorConfig(node=f"gang-{i}", slots=1) for i in range(3)]
    server, name, url = None, f"t_{secrets.token_hex(6)}", None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        run_admin(admin(server, f'CREATE DATABASE "{name}"'))
        url = server.database_url(name)
    s = make_stack(tmp_path_factory.mktemp("gang"), nodes, database_url=url)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        if server is not None:
            run_admin(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def api(gang_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gang_stack.api_url, headers=gang_stack.auth_headers, timeout=30) as c:
        wait_for(lambda: len(c.get("/v1/nodes").json()["items"]) == 3, 30, what="3 nodes")
        yield c


def gang(api: httpx.Client, out: Path, sleep: float) -> dict:
    out.mkdir()
    cmd = [sys.executable, "-c", RENDEZVOUS, str(out), str(sleep)]
    return submit(api, command=cmd, resources={"nodes": 3, "walltime": 120}, expected_runtime=30)


def test_three_ranks_meet_and_see_their_rank_env(
    api: httpx.Client, gang_stack: Stack, tmp_path: Path
) -> None:
    job = gang(api, tmp_path / "out", 0)
    done = wait_state(api, job["id"], {"succeeded", "failed"}, timeout=60)
    assert done["state"] == "succeeded", done
    ranks = [eval((tmp_path / "out" / f"rank-{r}").read_text()) for r in range(3)]
    port = ranks[0]["env"]["MASTER_PORT"]
    for r, got in enumerate(ranks):
        assert got["seen"] == [0, 1, 2]
        env = got["env"]
        assert env["RANK"] == env["JOBWIRE_RANK"] == str(r)
        assert env["WORLD_SIZE"] == env["JOBWIRE_WORLD_SIZE"] == "3"
        assert env["MASTER_ADDR"] == env["JOBWIRE_MASTER_ADDR"] == "127.0.0.1"
        assert env["MASTER_PORT"] == env["JOBWIRE_MASTER_PORT"] == port
        assert env["JOBWIRE_HOSTS"] == "127.0.0.1,127.0.0.1,127.0.0.1"
        assert env["JOBWIRE_JOB_ID"] == job["id"]
    assert "dispatched 3 ranks to gang-" in str(done["transitions"])
    for r in range(3):  # each rank's output on its own, none lost to another rank's offsets
        only = api.get(f"/v1/jobs/{job['id']}/logs", params={"rank": r, "stream": "stdout"}).text
        assert only == f"hello from rank {r} of 3\n"
        both = api.get(f"/v1/jobs/{job['id']}/logs", params={"rank": r}).text
        assert both == only
    env = {**os.environ, "JOBWIRE_URL": gang_stack.api_url, "JOBWIRE_TOKEN": gang_stack.token or ""}
    cli = [sys.executable, "-m", "jobwire.client.cli", "logs", "--rank", "2", job["id"]]
    shown = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert shown.stdout == "hello from rank 2 of 3\n"  # jobwire logs --rank 2
    everything = api.get(f"/v1/jobs/{job['id']}/logs").text
    assert sorted(everything.splitlines()) == [f"hello from rank {r} of 3" for r in range(3)]


def test_killing_one_rank_stops_the_others_and_fails_the_job_naming_it(
    api: httpx.Client, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = gang(api, out, 120)
    pids = wait_for(lambda: met([out] * 3), 60, what="the 3 ranks to meet")
    wait_state(api, job["id"], "running", timeout=30)
    os.kill(pids[1], signal.SIGKILL)
    done = wait_state(api, job["id"], {"failed", "succeeded", "cancelled"}, timeout=40)
    assert done["state"] == "failed", done
    assert done["reason"].startswith("rank 1 on gang-"), done["reason"]
    assert "the 2 other ranks were stopped" in done["reason"]

    wait_for(lambda: gone(pids[0]) and gone(pids[2]), 30, what="ranks 0 and 2 to be stopped")


def test_a_gang_larger_than_the_nodes_is_refused(api: httpx.Client) -> None:
    r = api.post("/v1/jobs", json={"command": ["true"], "resources": {"nodes": 4}})
    assert r.status_code == 422, r.text
    assert "needs 4 nodes of one backend that runs gangs" in r.text
    assert "the most is 3 of backend local" in r.text


def test_a_gang_waits_for_busy_nodes_then_starts_all_at_once(api: httpx.Client, tmp_path: Path) -> None:
    blocker = submit(api, command=["sleep", "3"], node="gang-1", expected_runtime=3)
    wait_state(api, blocker["id"], "running", timeout=30)
    t0 = time.monotonic()
    job = gang(api, tmp_path / "out", 0)
    small = submit(api, command=["true"], node="gang-1", expected_runtime=1)
    waiting = api.get(f"/v1/jobs/{job['id']}").json()
    assert waiting["state"] == "queued" and "waiting for 3 nodes" in waiting["reason"], waiting
    try:
        done = wait_state(api, job["id"], {"succeeded", "failed"}, timeout=60)
    except AssertionError:
        raise AssertionError(api.get(f"/v1/jobs/{job['id']}").json()) from None
    assert done["state"] == "succeeded", done
    assert time.monotonic() - t0 > 1.5
    # the node kept for the gang took no small job before it: the small one started after the gang
    small_done = wait_state(api, small["id"], "succeeded", timeout=60)
    assert small_done["started_at"] >= done["started_at"]


def test_a_running_gang_outlives_a_scheduler_restart(
    api: httpx.Client, gang_stack: Stack, tmp_path: Path
) -> None:
    """Every rank's node is kept with the job: the restarted scheduler takes ranks 1 and 2's reports
    as the job's, instead of stopping them as stale runs."""
    out = tmp_path / "out"
    job = gang(api, out, 8)
    wait_for(lambda: all((out / f"rank-{r}").exists() for r in range(3)), 60, what="the 3 ranks to meet")
    wait_state(api, job["id"], "running", timeout=30)
    gang_stack.restart("scheduler")
    done = wait_state(api, job["id"], {"succeeded", "failed", "lost"}, timeout=60)
    assert done["state"] == "succeeded", done
    assert all((out / f"end-{r}").exists() for r in range(3))  # no rank was stopped


def test_a_ranks_node_lost_stops_the_others_and_loses_the_job_naming_it(
    api: httpx.Client, gang_stack: Stack, tmp_path: Path
) -> None:
    """Last in this module: it kills one of the stack's executors for good."""
    out = tmp_path / "out"
    job = gang(api, out, 120)
    pids = wait_for(lambda: met([out] * 3), 60, what="the 3 ranks to meet")
    running = wait_state(api, job["id"], "running", timeout=30)
    dispatched = next(t["reason"] for t in running["transitions"] if t["state"] == "starting")
    nodes = dispatched.split(" to ", 1)[1].split(", ")  # rank order
    gang_stack.services[f"executor-{nodes[2]}"].kill()  # rank 2's node stops answering
    try:
        done = wait_state(api, job["id"], {"lost", "failed", "succeeded"}, timeout=40)
        assert done["state"] == "lost", done
        assert done["reason"] == (
            f"rank 2: node {nodes[2]} stopped answering; the other ranks were stopped"
        ), done["reason"]

        wait_for(lambda: gone(pids[0]) and gone(pids[1]), 30, what="ranks 0 and 1 to be stopped")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[2], signal.SIGKILL)  # its executor is gone: nobody else stops it
