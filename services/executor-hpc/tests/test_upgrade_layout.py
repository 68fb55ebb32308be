"""A batch job an executor before the one attempt layout (issue 16) submitted, on the real SLURM.

Such an executor kept its bookkeeping (run.json, batch_id, submitting, state.json, signal, reported)
at the top of the job's directory, beside the batch script, the wrapper's files and the logs, which
stay where they were. The test lays a running job's attempt out that way while its executor is down,
as the older executor left it, and restarts the executor: the job is adopted again and reports its
end, its exit code and its logs once.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm")]
NODE = "hpc-slurm"
#: what an older executor kept in the job's directory and now lives in the executor's own tree
BOOKKEEPING = {"run.json", "batch_id", "submitting", "state.json", "signal", "reported"}


def lay_out_as_before(root: Path, job_id: str) -> set[str]:
    """Move the attempt's bookkeeping back into its directory, as an older executor had it."""
    own, job = root / ".executor" / "jobs" / job_id / "1", root / "jobs" / job_id / "1"
    names = {p.name for p in own.iterdir()}
    for name in names:
        (own / name).rename(job / name)
    shutil.rmtree(own.parent)
    return names


def test_a_batch_job_an_older_executor_laid_out_is_adopted_and_reports_its_end(api, stack, tmp_path):
    root = stack.home / "executors" / NODE
    go = tmp_path / "go"
    script = f"echo before; while [ ! -e {go} ]; do sleep 0.2; done; echo after; echo gone >&2; exit 5"
    running = api.submit(node=NODE, command=["sh", "-c", script], resources={"walltime": 300})
    ended = api.submit(node=NODE, command=["sh", "-c", "echo done"], resources={"walltime": 300})
    assert api.wait_state(ended["id"], api.END)["state"] == "succeeded"
    reported = root / ".executor" / "jobs" / ended["id"] / "1" / "reported"
    api.wait_for(reported.exists, 30, what="the ended job marked reported")
    api.wait_state(running["id"], "running")
    api.wait_for(lambda: api.logs(running["id"], "stdout") == "before\n", 60, what="the first line logged")
    batch_id = (root / ".executor" / "jobs" / running["id"] / "1" / "batch_id").read_text()

    stack.services[f"executor-{NODE}"].kill()
    moved = lay_out_as_before(root, running["id"])
    assert {"run.json", "batch_id", "submitting", "state.json"} <= moved, moved
    assert "reported" in lay_out_as_before(root, ended["id"])
    time.sleep(1)
    stack.start_service(f"executor-{NODE}")
    go.touch()

    done = api.wait_state(running["id"], api.END, timeout=120)
    assert (done["state"], done["exit_code"]) == ("failed", 5), done
    assert api.logs(running["id"], "stdout") == "before\nafter\n"  # resumed where it was, nothing twice
    assert api.logs(running["id"], "stderr") == "gone\n"
    for job_id, names in ((running["id"], moved), (ended["id"], {"run.json", "reported"})):
        own, job = root / ".executor" / "jobs" / job_id / "1", root / "jobs" / job_id / "1"
        assert names <= {p.name for p in own.iterdir()}, job_id
        assert not BOOKKEEPING & {p.name for p in job.iterdir()}, job_id
        assert (job / "stdout").exists() and (job / "batch.sh").exists()
    assert (root / ".executor" / "jobs" / running["id"] / "1" / "batch_id").read_text() == batch_id
    assert api.job(ended["id"])["state"] == "succeeded"
