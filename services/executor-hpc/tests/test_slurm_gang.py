"""A gang on SLURM (``"backend": "slurm", "resources": {"nodes": 2}``) is one batch job asking
``--nodes 2``: the batch system, not jobwire, places its nodes, and ``srun`` starts one rank per node
with jobwire's rank variables. The test cluster has one slurmd node, so ``sbatch --test-only`` is
asked whether it read the node count: the 2-node script is refused for its node count alone (the
same script with one node would run there); a 1-node gang runs for real through the same launch."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, Resources, SlurmOptions
from jobwire.contracts.v1.gang import master_port
from jobwire.execution.attempt import layout as L
from jobwire.execution.hpc import BatchRequest
from jobwire.executor_hpc.schedulers.slurm import Slurm
from jobwire.executor_hpc.schedulers.slurm_gang import GANG_REASON
from tests.support.gang import RENDEZVOUS, rank_report

pytestmark = pytest.mark.integration


JOB = "01a2b3c4-0000-7000-8000-0000000000c2"


def write_gang(
    tmp_path: Path, nodes: int, command: list[str] | None = None, name: str = "", job: str = JOB
) -> Path:
    """The batch script and data files the executor writes for a gang of ``nodes`` ranks (the real
    attempt wrapper included), as in ``HpcExecutor.start``."""
    d = tmp_path / (name or f"gang{nodes}")
    d.mkdir()
    (d / "work").mkdir()
    (d / L.WRAPPER).write_text(L.WRAPPER_SCRIPT)
    command = command or ["hostname"]
    spec = JobSpec(
        command=command,
        backend="slurm",
        resources=Resources(nodes=nodes, cpus=1, walltime=60),
        slurm=SlurmOptions(partition="debug"),
    )
    req = BatchRequest(
        job_id=job,
        attempt=1,
        spec=spec,
        job_dir=str(d),
        stdout=str(d / "stdout"),
        stderr=str(d / "stderr"),
        argv=["/bin/sh", str(d / L.WRAPPER), str(d), str(d / "work"), "0", *command],
        env={"JW_TEST": "from the spec"},
        walltime=60,
        ranks=nodes,
    )
    adapter = Slurm()
    script = adapter.build_script(req)
    for file_name, data in adapter.launch_files(req).items():
        (d / file_name).parent.mkdir(exist_ok=True)
        (d / file_name).write_bytes(data)
    (d / "batch.sh").write_text(script)
    return d / "batch.sh"


@pytest.mark.backend("slurm")
def test_a_two_node_gang_is_one_batch_job_asking_two_nodes(slurm_cluster, tmp_path):
    two = write_gang(tmp_path, 2, ["/bin/echo", "jw-user-text"])
    directives = [line for line in two.read_text().splitlines() if line.startswith("#SBATCH")]
    assert [d for d in directives if re.match(r"#SBATCH --nodes[= ]", d)] in (
        ["#SBATCH --nodes=2"],
        ["#SBATCH --nodes 2"],
    ), directives
    assert "#SBATCH --ntasks-per-node=1" in directives  # not --ntasks=1, which sbatch fits on 1 node
    text = two.read_text()
    # one srun step, one rank per node; one rank failing stops the others
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=1 --kill-on-bad-exit=1" in text
    assert "jw-user-text" not in text and "from the spec" not in text  # the job's are data (issue 12)
    rank1 = (two.parent / "rank1" / "batch.args").read_bytes().split(b"\0")
    assert b"RANK=1" in rank1 and b"WORLD_SIZE=2" in rank1 and b"JOBWIRE_RANK=1" in rank1
    assert str(two.parent / "rank1").encode() in rank1  # rank 1's wrapper keeps its files apart
    assert b"RANK=0" in (two.parent / "batch.args").read_bytes().split(b"\0")
    one = slurm_cluster.run("sbatch", "--test-only", str(write_gang(tmp_path, 1)))
    assert one.returncode == 0 and "on nodes localhost" in one.stderr, one.stderr
    test = slurm_cluster.run("sbatch", "--test-only", str(two))
    assert test.returncode != 0, test.stderr  # one slurmd node: sbatch read --nodes 2 and refused it
    assert "node configuration is not available" in test.stderr, test.stderr


def wait_done(slurm_cluster, job: str, timeout: float = 180.0) -> None:
    """Until the batch job has left the queue (generous: the machine is shared and loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T")
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {job} still queued or running after {timeout} s")


def submit(slurm_cluster, script: Path) -> str:
    out = slurm_cluster.run("sbatch", "--parsable", str(script))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


@pytest.mark.backend("slurm")
def test_a_one_node_gang_runs_its_rank_with_the_rank_variables(slurm_cluster, tmp_path):
    node = "127.0.0.1"  # the node's NodeAddr (slurm-up.sh: NodeName=localhost NodeAddr=127.0.0.1)
    script = write_gang(tmp_path, 1, ["/usr/bin/env"])
    wait_done(slurm_cluster, submit(slurm_cluster, script))
    d = script.parent
    assert (d / "exit_code").read_text().strip() == "0", (d / "stderr").read_text()
    seen = dict(line.split("=", 1) for line in (d / "stdout").read_text().splitlines() if "=" in line)
    port = str(master_port(JOB, 1))
    for prefix in ("", "JOBWIRE_"):
        assert seen[f"{prefix}RANK"] == "0"
        assert seen[f"{prefix}WORLD_SIZE"] == "1"
        assert seen[f"{prefix}MASTER_ADDR"] == node
        assert seen[f"{prefix}MASTER_PORT"] == port
    assert seen["JOBWIRE_HOSTS"] == node
    assert seen["JW_TEST"] == "from the spec"
    assert seen["SLURM_STEP_ID"] == "0"  # it ran as the srun step, not in the batch step
    assert not (d / GANG_REASON).exists()


@pytest.mark.backend("slurm")
def test_a_failing_rank_fails_the_gang_naming_the_rank(slurm_cluster, tmp_path):
    script = write_gang(tmp_path, 1, ["/bin/sh", "-c", "echo dying; exit 3"], name="fails")
    wait_done(slurm_cluster, submit(slurm_cluster, script))
    d = script.parent
    assert (d / "exit_code").read_text().strip() == "3"
    assert (d / GANG_REASON).read_text().strip() == "rank 0 exited with code 3; srun stopped the other ranks"
    assert "dying" in (d / "stdout").read_text()
    assert "jobwire: rank 0 exited with code 3" in (d / "stderr").read_text()


@pytest.mark.backend("slurm")
def test_a_two_node_gang_runs_one_rank_per_node_and_they_meet(slurm_two_nodes, tmp_path):
    """Two slurmd nodes (jw1, jw2, NodeAddr 127.0.0.1): srun starts rank 0 on jw1 and rank 1 on jw2;
    rank 1 reaches rank 0 at MASTER_ADDR:MASTER_PORT (jw1's address) and both see the other."""
    job = "01a2b3c4-0000-7000-8000-0000000000d2"
    out = tmp_path / "out"
    out.mkdir()
    script = write_gang(tmp_path, 2, [sys.executable, "-c", RENDEZVOUS, str(out), "0"], job=job)
    wait_done(slurm_two_nodes, submit(slurm_two_nodes, script))
    d = script.parent
    assert (d / "exit_code").read_text().strip() == "0", (d / "stderr").read_text()
    for rank in (0, 1):
        report = rank_report(out / f"rank-{rank}")
        assert report["seen"] == [0, 1]
        env = report["env"]
        assert env["RANK"] == env["JOBWIRE_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == env["JOBWIRE_WORLD_SIZE"] == "2"
        assert env["MASTER_ADDR"] == env["JOBWIRE_MASTER_ADDR"] == "127.0.0.1"  # jw1's NodeAddr
        assert env["MASTER_PORT"] == str(master_port(job, 1))
        assert env["JOBWIRE_HOSTS"] == "127.0.0.1,127.0.0.1"
    assert "hello from rank 0 of 2" in (d / "stdout").read_text()
    assert "hello from rank 1 of 2" in (d / "rank1" / "stdout").read_text()  # rank 1's log is its own
    assert (d / "rank1" / "exit_code").read_text().strip() == "0"


@pytest.mark.backend("slurm")
def test_one_rank_failing_stops_the_other_and_names_the_rank(slurm_two_nodes, tmp_path):
    """Rank 1 exits 3 at once while rank 0 would sleep 300 s: srun stops rank 0 and the job ends with
    rank 1's code and name, long before rank 0's sleep would have."""
    job = "01a2b3c4-0000-7000-8000-0000000000e2"
    cmd = ["/bin/sh", "-c", 'if [ "$RANK" = 1 ]; then exit 3; fi; sleep 300']
    script = write_gang(tmp_path, 2, cmd, name="onefails", job=job)
    started = time.monotonic()
    wait_done(slurm_two_nodes, submit(slurm_two_nodes, script), timeout=200)
    assert time.monotonic() - started < 250  # rank 0 did not sleep its 300 s
    d = script.parent
    assert (d / "exit_code").read_text().strip() == "3"
    assert (d / GANG_REASON).read_text().strip() == "rank 1 exited with code 3; srun stopped the other ranks"
    assert (d / "rank1" / "exit_code").read_text().strip() == "3"
