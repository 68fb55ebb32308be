"""The log file on disk is capped (issue 12 item 5): a job writing past it keeps running."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobState
from jobwire.execution.attempt.layout import LOG_TRUNCATED

pytestmark = pytest.mark.integration

CAP = 10_000
#: 60 000 bytes to stdout, 30 000 to stderr, then a line on each after the flood, and a file
#: written last: proof that the job ran on past the cap instead of being stopped by it.
CHATTY = (
    "head -c 60000 /dev/zero | tr '\\0' a; echo; echo after-out; "
    "head -c 30000 /dev/zero | tr '\\0' b >&2; echo after-err >&2; "
    'echo done > "$JOBWIRE_OUTPUT_DIR/finished.txt"'
)


def marker(stream: str) -> str:
    return "\n" + LOG_TRUNCATED.format(stream=stream, limit=CAP) + "\n"


async def test_a_job_writing_past_the_cap_keeps_running_and_its_logs_end_in_a_marker(harness):
    svc = await harness.executor(log_max_bytes=CAP)
    job = await harness.run(svc.node, {"command": ["sh", "-c", CHATTY]})
    done = await harness.wait(job, "finished", timeout=20)
    assert done.outcome is JobState.SUCCEEDED and done.exit_code == 0
    assert [a.name for a in done.artifacts] == ["finished.txt"]

    logs = Path(svc.settings.root_dir(), ".executor", "jobs", job, "1")  # the executor's own tree
    assert (logs / "stdout").read_text() == "a" * CAP + marker("stdout")
    assert (logs / "stderr").read_text() == "b" * CAP + marker("stderr")
    # the bus carries exactly what the file holds, marker included
    assert await harness.text(job, "stdout") == "a" * CAP + marker("stdout")
    assert await harness.text(job, "stderr") == "b" * CAP + marker("stderr")
    # the pipes the executor made for the readers (and any the wrapper made) are gone
    assert not [p for p in logs.iterdir() if p.name.endswith((".pipe", ".fifo"))]


async def test_a_job_under_the_cap_is_logged_whole_and_zero_means_no_cap(harness):
    svc = await harness.executor(log_max_bytes=CAP)
    small = await harness.run(svc.node, {"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    done = await harness.wait(small, "finished")
    assert (done.outcome, done.exit_code) == (JobState.FAILED, 3)
    assert await harness.text(small, "stdout") == "out\n"
    assert await harness.text(small, "stderr") == "err\n"

    free = await harness.executor(log_max_bytes=0)
    big = await harness.run(free.node, {"command": ["sh", "-c", CHATTY]})
    assert (await harness.wait(big, "finished", timeout=20)).exit_code == 0
    assert await harness.text(big, "stdout") == "a" * 60000 + "\nafter-out\n"


async def test_a_cancelled_job_keeps_its_last_words(harness, until, tmp_path):
    svc = await harness.executor(log_max_bytes=CAP)
    trapped = tmp_path / "trapped"
    script = (
        "trap 'echo bye; echo gone >&2; exit 7' TERM; echo ready; : > \"$1\"; while :; do sleep 0.1; done"
    )
    job = await harness.run(svc.node, {"command": ["sh", "-c", script, "sh", str(trapped)]})
    await harness.wait(job, "running")
    # running means started, not that the shell has set its trap yet: cancel once it has
    await until(trapped.exists, what="the job set its TERM trap")
    await harness.cancel(svc.node, job, reason="stop", grace=5)
    done = await harness.wait(job, "finished")
    assert (done.outcome, done.exit_code) == (JobState.CANCELLED, 7)
    assert await harness.text(job, "stdout") == "ready\nbye\n"
    # (the job's shell may also say its sleep was "Terminated")
    assert (await harness.text(job, "stderr")).endswith("gone\n")
