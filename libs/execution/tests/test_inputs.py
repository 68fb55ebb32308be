"""Named inputs on the local executor: fetched from the object store by owner, placed read-only below
the work directory before the job starts; a missing one fails the run at once with the reason."""

from __future__ import annotations

import os

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, JobState, RunJob, new_job_id
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration

SHOW = r"""
f=cfg/train.yaml
cat "$f"; cat data.csv
ls -l "$f" | cut -c1-10
if echo x >> "$f" 2>/dev/null; then echo writable; else echo read-only; fi
"""


async def run_as(harness, node: str, owner: str, spec: dict) -> str:
    job_id = new_job_id()
    msg = RunJob(job_id=job_id, attempt=1, node=node, owner=owner, spec=msgspec.convert(spec, JobSpec))
    await harness.bus.publish(sj.exec_subject(node, "run"), msg, msg_id=f"{job_id}:1:run")
    return job_id


async def test_inputs_are_placed_read_only_before_the_job_starts(harness):
    store = await harness.bus.inputs()
    await store.put(sj.input_object("alice", "configs/train.yaml"), b"threshold: 3\n")
    await store.put(sj.input_object("alice", "data.csv"), b"a,b\n")
    await store.put(sj.input_object("bob", "data.csv"), b"bob's\n")
    svc = await harness.executor()
    spec = {
        "command": ["sh", "-c", SHOW],
        "inputs": [{"name": "configs/train.yaml", "path": "cfg/train.yaml"}, {"name": "data.csv"}],
    }
    job = await run_as(harness, svc.node, "alice", spec)
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.SUCCEEDED, done
    out = await harness.text(job, "stdout")
    # Mode 0444; root ignores modes, so only another user is actually stopped from writing.
    last = "read-only\n" if os.geteuid() != 0 else out.rsplit("\n", 2)[-2] + "\n"
    assert out == "threshold: 3\na,b\n-r--r--r--\n" + last, out


async def test_a_missing_input_fails_the_run_at_once(harness):
    store = await harness.bus.inputs()
    await store.put(sj.input_object("bob", "only-bob.txt"), b"x")
    svc = await harness.executor()
    job = await run_as(harness, svc.node, "alice", {"command": ["true"], "inputs": [{"name": "nope.txt"}]})
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.FAILED and "input 'nope.txt' not found" in (done.reason or ""), done
    # another owner's input of that name is not theirs
    spec = {"command": ["true"], "inputs": [{"name": "only-bob.txt"}]}
    job = await run_as(harness, svc.node, "alice", spec)
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.FAILED and "not found" in (done.reason or ""), done
    assert not harness.of(job, "running")
