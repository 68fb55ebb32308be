"""Stopping runs: cancel kills the whole process group, timeouts, redelivery, hostile input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobState
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration


def gone(pid: int) -> bool:
    """Dead: no /proc entry, or a zombie waiting for PID 1 to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_cancel_kills_the_whole_process_group(harness, until, tmp_path):
    svc = await harness.executor()
    child_file = tmp_path / "child.pid"
    job = await harness.run(
        svc.node,
        {"command": ["sh", "-c", 'sleep 30 & echo $! > "$1"; echo started; wait', "sh", str(child_file)]},
    )
    await harness.wait(job, "running")
    await until(lambda: child_file.exists() and child_file.read_text().strip() != "", what="child started")
    child = int(child_file.read_text())
    assert not gone(child)

    await harness.cancel(svc.node, job, reason="user asked", grace=5)
    done = await harness.wait(job, "finished")
    assert (done.outcome, done.reason) == (JobState.CANCELLED, "user asked")
    assert done.exit_code == 143
    assert gone(child), "the job's child process must be killed with it"
    assert await harness.text(job, "stdout") == "started\n"


async def test_a_job_ignoring_term_is_killed_after_the_grace(harness, until):
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["sh", "-c", "trap '' TERM; echo up; sleep 30"]})
    await harness.wait(job, "running")
    # "up" says the trap is set: a TERM before it would end the job, on a busy machine too
    out = Path(svc.settings.root_dir(), ".executor", "jobs", job, "1", "stdout")
    await until(lambda: out.exists() and out.read_text() == "up\n", what="the job's trap")
    await harness.cancel(svc.node, job, outcome=JobState.LOST, reason="stale attempt", grace=0.3)
    done = await harness.wait(job, "finished")
    assert (done.outcome, done.reason, done.exit_code) == (JobState.LOST, "stale attempt", 137)


async def test_timeout_stops_the_run_as_timed_out(harness):
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["sleep", "30"]}, timeout=0.5)
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.TIMED_OUT and done.reason == "timed out after 0.5 s"
    assert done.exit_code == 143
    assert 0.4 < done.usage.wall_seconds < 5


async def test_cancel_for_unknown_or_finished_runs_is_acked_and_ignored(harness):
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["true"]})
    assert (await harness.wait(job, "finished")).outcome is JobState.SUCCEEDED
    await harness.cancel(svc.node, job)
    await harness.cancel(svc.node, "0190aaaa-0000-7000-8000-000000000000", attempt=3)
    await harness.settle(0.5)
    assert len(harness.of(job, "finished")) == 1
    info = await harness.bus.js.consumer_info(sj.EXEC_STREAM, f"exec-{svc.node}")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_redelivered_run_starts_nothing_twice(harness, tmp_path):
    svc = await harness.executor()
    marks = tmp_path / "marks"
    spec = {"command": ["sh", "-c", 'echo x >> "$1"; sleep 0.5', "sh", str(marks)]}
    job = await harness.run(svc.node, spec, msg_id="first")
    await harness.wait(job, "running")
    await harness.run(svc.node, spec, job_id=job, msg_id="redelivered")  # the same attempt again
    assert (await harness.wait(job, "finished")).outcome is JobState.SUCCEEDED
    await harness.run(svc.node, spec, job_id=job, msg_id="late")  # after it was reported
    await harness.settle(0.8)
    assert marks.read_text() == "x\n"
    assert len(harness.of(job, "finished")) == 1
    assert len(harness.of(job, "running")) == 1  # the re-sent report was de-duplicated by its id


HOSTILE = [
    "it's",
    'say "hi"',
    "a; rm -rf /tmp/jobwire-hostile",
    "$(touch /tmp/jobwire-hostile)",
    "`touch /tmp/jobwire-hostile`",
    "line1\nline2",
    "$HOME ${PATH} * ? ~ | & > <",
    "",
    "-n",
]
ECHO = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': os.environ['HOSTILE']}))"


@pytest.mark.parametrize("form", ["command", "script", "code"])
async def test_hostile_strings_arrive_verbatim(harness, form):
    svc = await harness.executor()
    if form == "command":
        spec = {"command": [sys.executable, "-c", ECHO], "args": HOSTILE}
    elif form == "script":
        spec = {"script": f'exec "{sys.executable}" -c "{ECHO}" "$@"\n', "args": HOSTILE}
    else:
        spec = {
            "code": {"filename": "echo.py", "content": ECHO, "interpreter": [sys.executable]},
            "args": HOSTILE,
        }
    env_value = "\n".join(HOSTILE)
    spec["env"] = {"HOSTILE": env_value}
    spec["workdir"] = "dir with 'quotes' and $(x)"
    job = await harness.run(svc.node, spec)
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.SUCCEEDED, await harness.text(job, "stderr")
    assert json.loads(await harness.text(job, "stdout")) == {"argv": HOSTILE, "env": env_value}
    assert not os.path.exists("/tmp/jobwire-hostile")
