"""Runs driven through the bus against a real nats-server: logs, env, progress, artifacts, forms."""

from __future__ import annotations

import os
import sys

import pytest
from nats.js.errors import ObjectNotFoundError

from jobwire.contracts.v1 import JobState
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution.runner import NO_CATALOG

pytestmark = pytest.mark.integration

JOB = r"""
import json, os, sys
print("hello out"); sys.stdout.flush()
print("hello err", file=sys.stderr)
out = os.environ["JOBWIRE_OUTPUT_DIR"]
os.makedirs(os.path.join(out, "sub"))
open(os.path.join(out, "result.txt"), "w").write("42\n")
open(os.path.join(out, "sub", "more.bin"), "wb").write(b"\x00\x01")
os.symlink("/etc/passwd", os.path.join(out, "link"))
tmp = os.environ["JOBWIRE_PROGRESS_FILE"] + ".tmp"
json.dump({"step": 3, "of": 3}, open(tmp, "w")); os.replace(tmp, os.environ["JOBWIRE_PROGRESS_FILE"])
names = ["JOBWIRE_JOB_ID", "JOBWIRE_ATTEMPT", "JOBWIRE_JOB_DIR", "GREETING"]
seen = {n: os.environ.get(n) for n in names}
print(json.dumps(seen | {"cwd": os.getcwd(), "secret": os.environ.get("JOBWIRE_NATS_URL")}))
"""


async def test_success_reports_logs_env_progress_and_artifacts(harness, monkeypatch):
    monkeypatch.setenv("JOBWIRE_NATS_URL", "nats://must-not-leak")
    svc = await harness.executor()
    job = await harness.run(
        svc.node, {"command": [sys.executable, "-c", JOB], "env": {"GREETING": "hi there"}}
    )

    running = await harness.wait(job, "running")
    done = await harness.wait(job, "finished")
    assert running.node == done.node == svc.node
    # a fresh launch that runs says only that it runs: the scheduler made it starting at dispatch
    assert harness.of(job, "starting") == []
    assert done.outcome is JobState.SUCCEEDED and done.exit_code == 0 and done.reason is None
    assert done.usage.wall_seconds is not None and done.usage.wall_seconds >= 0
    assert sorted(a.name for a in done.artifacts) == ["result.txt", "sub/more.bin"]

    out = await harness.text(job, "stdout")
    lines = out.splitlines()
    assert lines[0] == "hello out"
    env = __import__("json").loads(lines[1])
    job_dir = f"{svc.settings.root}/jobs/{job}/1"
    assert env == {
        "JOBWIRE_JOB_ID": job,
        "JOBWIRE_ATTEMPT": "1",
        "JOBWIRE_JOB_DIR": job_dir,
        "GREETING": "hi there",
        "cwd": f"{job_dir}/work",
        "secret": None,
    }
    assert await harness.text(job, "stderr") == "hello err\n"

    progress = await harness.bus.js.get_last_msg(sj.EVT_STREAM, sj.event_subject(job, "progress"))
    assert b'"progress":{"step":3,"of":3}' in progress.data

    store = await harness.bus.artifacts()
    assert (await store.get(f"{job}/result.txt")).data == b"42\n"
    assert (await store.get(f"{job}/sub/more.bin")).data == b"\x00\x01"


LINKS = r"""
import os, sys
out = os.environ["JOBWIRE_OUTPUT_DIR"]
open(os.path.join(out, "plain.txt"), "w").write("mine\n")
os.link(sys.argv[1], os.path.join(out, "hard.txt"))
os.symlink(sys.argv[1], os.path.join(out, "soft.txt"))
"""


async def test_outputs_that_link_outside_are_not_uploaded(harness, tmp_path):
    """Issue 12: a hard link (or symlink) in outputs/ to a file outside never becomes an artifact."""
    outside = tmp_path / "outside-secret"
    outside.write_text("not the job's\n")
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": [sys.executable, "-c", LINKS, str(outside)]})
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.SUCCEEDED, await harness.text(job, "stderr")
    assert [a.name for a in done.artifacts] == ["plain.txt"]
    store = await harness.bus.artifacts()
    assert (await store.get(f"{job}/plain.txt")).data == b"mine\n"
    for name in ("hard.txt", "soft.txt"):
        with pytest.raises(ObjectNotFoundError):
            await store.get(f"{job}/{name}")


async def test_an_output_swapped_for_a_symlink_after_listing_is_refused(harness, tmp_path):
    from jobwire.execution.transport.confined import PathRefused

    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["sh", "-c", 'echo 1 > "$JOBWIRE_OUTPUT_DIR/a.txt"']})
    await harness.wait(job, "finished")
    ex = svc.executor
    d = ex.files().dir(job, 1)
    assert [o.name for o in await ex.files().list_outputs(d)] == ["a.txt"]
    os.unlink(f"{d.outputs}/a.txt")
    os.symlink("/etc/hostname", f"{d.outputs}/a.txt")
    with pytest.raises(PathRefused, match="symlink"):
        await ex.files().read_output(d, "a.txt", 0, 100)


async def test_failing_exit_code_is_reported(harness):
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["sh", "-c", "echo bad >&2; exit 3"]})
    done = await harness.wait(job, "finished")
    assert (done.outcome, done.exit_code, done.reason) == (JobState.FAILED, 3, "exit code 3")
    assert await harness.text(job, "stderr") == "bad\n"


async def test_missing_command_fails_with_127(harness):
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["no-such-program-jobwire"]})
    done = await harness.wait(job, "finished")
    assert (done.outcome, done.exit_code) == (JobState.FAILED, 127)


async def test_script_and_code_forms(harness):
    svc = await harness.executor()
    plain = await harness.run(svc.node, {"script": 'echo "plain $1 $#"\n', "args": ["a b", "c"]})
    bang = await harness.run(svc.node, {"script": "#!/bin/sh\necho bang $0\n"})
    code = await harness.run(
        svc.node,
        {
            "code": {"filename": "train.py", "content": "import sys; print('py', sys.argv[1:])"},
            "args": ["--x", "1"],
        },
    )
    shell = await harness.run(
        svc.node, {"code": {"filename": "go.sh", "content": "echo sh-code $1"}, "args": ["z"]}
    )
    interp = await harness.run(
        svc.node,
        {"code": {"filename": "t.txt", "content": "print('given')", "interpreter": [sys.executable]}},
    )
    unknown = await harness.run(svc.node, {"code": {"filename": "t.rb", "content": "puts 1"}})
    program = await harness.run(svc.node, {"program": "blast@2.1"})

    for job in (plain, bang, code, shell, interp):
        assert (await harness.wait(job, "finished")).outcome is JobState.SUCCEEDED
    assert await harness.text(plain, "stdout") == "plain a b 2\n"
    assert (await harness.text(bang, "stdout")).startswith("bang /")
    assert await harness.text(code, "stdout") == "py ['--x', '1']\n"
    assert await harness.text(shell, "stdout") == "sh-code z\n"
    assert await harness.text(interp, "stdout") == "given\n"

    refused = await harness.wait(unknown, "finished")
    assert refused.outcome is JobState.FAILED and "t.rb" in refused.reason and "interpreter" in refused.reason
    no_catalog = await harness.wait(program, "finished")
    assert (no_catalog.outcome, no_catalog.reason) == (JobState.FAILED, NO_CATALOG)
    assert not harness.of(program, "running")


async def test_workdir_relative_to_work(harness):
    svc = await harness.executor()
    job = await harness.run(svc.node, {"command": ["pwd"], "workdir": "deep/er"})
    assert (await harness.wait(job, "finished")).outcome is JobState.SUCCEEDED
    assert (await harness.text(job, "stdout")).strip().endswith(f"/jobs/{job}/1/work/deep/er")


async def test_utf8_survives_chunk_boundaries(harness):
    svc = await harness.executor()
    # 3-byte characters across > 64 KiB, so chunk edges fall inside characters unless cut carefully
    payload = "€" * 50_000 + "end"
    job = await harness.run(
        svc.node, {"command": [sys.executable, "-c", "print('€' * 50_000 + 'end', end='')"]}
    )
    assert (await harness.wait(job, "finished")).outcome is JobState.SUCCEEDED
    chunks = [c for c in await harness.logs(job) if c.stream == "stdout" and not c.eof]
    assert len(chunks) >= 3
    assert all("\ufffd" not in c.data for c in chunks)
    assert await harness.text(job, "stdout") == payload


async def test_short_runs_start_before_they_end_and_measure_their_wall_time(harness):
    """``running`` is dated when the wrapper began, not when the executor noticed: six short jobs
    (the count users reported: all six ended before they started) each start before they end, and
    a 0.4 s job reports about 0.4 s of wall time."""
    svc = await harness.executor()
    jobs = [await harness.run(svc.node, {"command": ["true"]}) for _ in range(6)]
    timed = await harness.run(svc.node, {"command": ["sleep", "0.4"]})
    for job in [*jobs, timed]:
        running = await harness.wait(job, "running")
        done = await harness.wait(job, "finished")
        assert done.outcome is JobState.SUCCEEDED
        assert running.at <= done.at, (job, running.at, done.at)
        assert done.usage.wall_seconds == pytest.approx((done.at - running.at).total_seconds(), abs=0.002)
    assert 0.35 <= done.usage.wall_seconds < 1.5, done.usage


async def test_an_absolute_workdir_runs_only_below_the_nodes_allowed_roots(harness, tmp_path):
    """Issue 12 item 5: an absolute directory is refused unless the node allows a root above it (the
    system directories and ``..`` never get this far: the spec's decoding refuses them)."""
    shared = tmp_path / "shared"
    (shared / "proj").mkdir(parents=True)
    closed = await harness.executor()
    refused = await harness.run(closed.node, {"command": ["pwd"], "workdir": str(shared / "proj")})
    done = await harness.wait(refused, "finished")
    assert done.outcome is JobState.FAILED
    assert f"'{shared}/proj' is not below this node's allowed roots" in done.reason
    assert "JOBWIRE_EXECUTOR_WORKDIR_ROOTS" in done.reason
    assert not harness.of(refused, "running")

    opened = await harness.executor(workdir_roots=[str(shared)])
    inside = await harness.run(opened.node, {"command": ["pwd"], "workdir": f"{shared}/proj"})
    assert (await harness.wait(inside, "finished")).outcome is JobState.SUCCEEDED
    assert (await harness.text(inside, "stdout")).strip() == f"{shared}/proj"
    for outside in (str(tmp_path), f"{shared}-other", "/opt/elsewhere"):
        job = await harness.run(opened.node, {"command": ["pwd"], "workdir": outside})
        done = await harness.wait(job, "finished")
        assert done.outcome is JobState.FAILED and "allowed roots" in done.reason, outside
        assert not harness.of(job, "running")
