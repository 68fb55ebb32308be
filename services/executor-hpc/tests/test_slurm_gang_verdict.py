"""Which rank a SLURM gang's batch script blames once its srun step is over, from what each rank's
wrapper left (its ``exit_code`` file, or none when srun killed the wrapper too). The script's own
fixed tail runs under /bin/sh here with ``true`` standing in for srun: the files are placed as the
ranks would leave them, with their times, so each rule is seen deciding."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, Resources
from jobwire.execution.hpc import BatchRequest
from jobwire.executor_hpc.schedulers.slurm_gang import GANG_REASON, gang_tail

pytestmark = pytest.mark.unit


def verdict(tmp_path: Path, codes: dict[int, tuple[str, float] | None]) -> tuple[int, str | None]:
    """Run the tail for ``len(codes)`` ranks whose exit_code files say ``(code, mtime)`` (None: no
    file); returns the script's exit status and the reason it recorded."""
    d = tmp_path / "job"
    d.mkdir()
    for rank, left in codes.items():
        if left is None:
            continue
        own = d if rank == 0 else d / f"rank{rank}"
        own.mkdir(exist_ok=True)
        (own / "exit_code").write_text(f"{left[0]}\n")
        os.utime(own / "exit_code", (left[1], left[1]))
    req = BatchRequest(
        job_id="j",
        attempt=1,
        spec=JobSpec(command=["x"], resources=Resources(nodes=len(codes))),
        job_dir=str(d),
        stdout=str(d / "stdout"),
        stderr=str(d / "stderr"),
        ranks=len(codes),
    )
    script = gang_tail(req, False, "true", "batch.setup")
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
    reason = d / GANG_REASON
    return out.returncode, reason.read_text().strip() if reason.exists() else None


T = 1_700_000_000.0


def test_a_rank_killed_from_outside_is_blamed_not_the_ranks_srun_stopped_after_it(tmp_path):
    # rank 1 SIGKILLed (137), then srun stopped rank 0 with TERM (143) a moment later
    rc, why = verdict(tmp_path, {0: ("143", T + 0.5), 1: ("137", T)})
    assert (rc, why) == (137, "rank 1 exited with code 137; srun stopped the other ranks")


def test_a_killed_rank_is_blamed_when_srun_killed_the_others_before_they_recorded_anything(tmp_path):
    rc, why = verdict(tmp_path, {0: None, 1: ("137", T), 2: None})
    assert (rc, why) == (137, "rank 1 exited with code 137; srun stopped the other ranks")


def test_a_rank_failing_on_its_own_comes_before_any_signalled_one(tmp_path):
    rc, why = verdict(tmp_path, {0: ("143", T - 5), 1: ("0", T), 2: ("3", T + 1), 3: ("4", T + 2)})
    assert (rc, why) == (3, "rank 2 exited with code 3; srun stopped the other ranks")


def test_a_rank_that_left_nothing_while_the_others_ended_well_is_named_lost(tmp_path):
    rc, why = verdict(tmp_path, {0: ("0", T), 1: None})
    assert rc == 1
    assert why == "rank 1 ended without an exit code (killed, or its node was lost)"


def test_every_rank_ending_well_ends_the_job_well(tmp_path):
    assert verdict(tmp_path, {0: ("0", T), 1: ("0", T)}) == (0, None)
