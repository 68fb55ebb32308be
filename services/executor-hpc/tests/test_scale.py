"""300 batch jobs in flight on one node: the list command runs once per poll for all of them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOBS = 300
POLL = 0.5  # JOBWIRE_HPC_POLL_INTERVAL in conftest


@pytest.mark.parametrize(
    ("node", "lister", "accountant"),
    [
        pytest.param("count-slurm", "squeue", "sacct", marks=pytest.mark.backend("slurm")),
        pytest.param("count-sge", "qstat", "qacct", marks=pytest.mark.backend("sge")),
    ],
)
def test_list_calls_per_poll_do_not_grow_with_jobs(
    api, stack, count_log: Path, tmp_path: Path, node, lister, accountant
):
    before = count_log.read_text().splitlines() if count_log.exists() else []
    go = tmp_path / "go"
    started = time.monotonic()
    # Every job waits for ``go``: all 300 are in flight (most pending in the batch system) at once.
    wait = ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.2; done"]
    ids = [api.submit(node=node, command=wait, resources={"walltime": 600})["id"] for _ in range(JOBS)]
    jobs_dir = stack.home / "executors" / node / ".executor" / "jobs"
    api.wait_for(lambda: len(list(jobs_dir.glob("*/1/batch_id"))) >= JOBS, 120, what="all jobs submitted")
    time.sleep(3 * POLL)
    go.touch()
    for job_id in ids:
        done = api.wait_state(job_id, api.END, timeout=240)
        assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
    elapsed = time.monotonic() - started
    calls = count_log.read_text().splitlines()[len(before) :]
    # SGE's pending reasons: one qstat -j for all pending jobs, at most every few seconds (squeue's own
    # -j is its id list: every squeue call is a list call)
    is_reason = lambda c: lister == "qstat" and " -j " in c  # noqa: E731
    lists = [c for c in calls if c.startswith(lister + " ") and not is_reason(c)]
    reasons = [c for c in calls if c.startswith(lister + " ") and is_reason(c)]
    assert len(reasons) <= elapsed / 5 + 2, (len(reasons), elapsed)
    accts = [c for c in calls if c.startswith(accountant + " ")]
    # One list call per poll interval at most, however many jobs are tracked: never one per job.
    assert len(lists) <= elapsed / POLL + 5, (len(lists), elapsed)
    assert len(accts) <= len(lists) + 5, (len(accts), len(lists))
    if lister == "squeue":
        # ids are named in the one call: while all were in flight it carried every one of them
        assert max(c.count(",") + 1 for c in lists) == JOBS
    print(
        f"{node}: {JOBS} jobs in {elapsed:.1f} s, {len(lists)} {lister} and {len(accts)} {accountant} calls"
    )
