"""What users read back after a batch job: its times in order and its usage in the right units.

Real SLURM and SGE through the stack: short jobs must not end before they started (running was
dated at the executor's first poll), and a process of known size (60 MiB, touched) must show about
that much memory (SGE's qacct printed it 1024x too small).
"""

from __future__ import annotations

from datetime import datetime

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm"), pytest.mark.backend("sge")]

MIB = 1024**2
#: writes 2 MiB to a file, then holds 60 MiB of touched memory for 3 s: SGE samples maxvmem and io
#: while the job runs (a write at the very end is not seen); getrusage's maxrss is exact
SIXTY_MIB = """
import os, time
b = b"x" * (60 << 20)
with open("out.bin", "wb") as f:
    f.write(b[: 2 << 20])
    f.flush()
    os.fsync(f.fileno())
time.sleep(3)
"""


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("node", ["hpc-slurm", "hpc-sge"])
def test_short_jobs_start_before_they_end(api, node):
    jobs = [api.submit(node=node, command=["true"], resources={"walltime": 120}) for _ in range(6)]
    for j in jobs:
        done = api.wait_state(j["id"], api.END)
        assert done["state"] == "succeeded", done
        started, ended = _at(done["started_at"]), _at(done["ended_at"])
        assert started <= ended, (node, done["started_at"], done["ended_at"])
        running = [t for t in done["transitions"] if t["state"] == "running"]
        assert len(running) == 1 and _at(running[0]["at"]) == started, done["transitions"]


@pytest.mark.parametrize("node", ["hpc-slurm", "hpc-sge"])
def test_usage_of_a_process_of_known_size(api, node):
    j = api.submit(node=node, command=["python3", "-c", SIXTY_MIB], resources={"walltime": 120})
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "succeeded", done
    usage = done["usage"]
    assert 60 * MIB <= usage["max_rss_bytes"] <= 120 * MIB, usage
    assert 2.5 <= usage["wall_seconds"] <= 30, usage
    assert (_at(done["ended_at"]) - _at(done["started_at"])).total_seconds() >= 2.5, done
    if node == "hpc-sge":
        assert usage["max_vmem_bytes"] >= 60 * MIB, usage
        assert usage["io_bytes"] >= 1 * MIB, usage
