"""A gang on SLURM (``"backend": "slurm", "resources": {"nodes": 2}``) is one batch job asking
``--nodes 2``: the batch system, not jobwire, places its nodes. The test cluster has one slurmd node,
so ``sbatch --test-only`` is asked whether it read the node count: the 2-node script is refused for
its node count alone (the same script with one node would run there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, Resources, SlurmOptions
from jobwire.execution.hpc import BatchRequest
from jobwire.executor_hpc.schedulers.slurm import Slurm

pytestmark = pytest.mark.integration


def write_gang(tmp_path: Path, nodes: int) -> Path:
    d = tmp_path / f"gang{nodes}"
    d.mkdir()
    spec = JobSpec(
        command=["hostname"],
        backend="slurm",
        resources=Resources(nodes=nodes, cpus=1, walltime=60),
        slurm=SlurmOptions(partition="debug"),
    )
    req = BatchRequest(
        job_id="01a2b3c4-0000-7000-8000-0000000000c2",
        attempt=1,
        spec=spec,
        job_dir=str(d),
        stdout=str(d / "stdout"),
        stderr=str(d / "stderr"),
        argv=["/bin/sh", str(d / "wrapper.sh"), str(d), str(d / "work"), "0", "hostname"],
        env={},
        walltime=60,
    )
    adapter = Slurm()
    script = adapter.build_script(req)
    for name, data in adapter.launch_files(req).items():
        (d / name).write_bytes(data)
    (d / "batch.sh").write_text(script)
    return d / "batch.sh"


@pytest.mark.backend("slurm")
def test_a_two_node_gang_is_one_batch_job_asking_two_nodes(slurm_cluster, tmp_path):
    two = write_gang(tmp_path, 2)
    directives = [line for line in two.read_text().splitlines() if line.startswith("#SBATCH")]
    assert [d for d in directives if re.match(r"#SBATCH --nodes[= ]", d)] in (
        ["#SBATCH --nodes=2"],
        ["#SBATCH --nodes 2"],
    ), directives
    assert "#SBATCH --ntasks-per-node=1" in directives  # not --ntasks=1, which sbatch fits on 1 node
    one = slurm_cluster.run("sbatch", "--test-only", str(write_gang(tmp_path, 1)))
    assert one.returncode == 0 and "on nodes localhost" in one.stderr, one.stderr
    test = slurm_cluster.run("sbatch", "--test-only", str(two))
    assert test.returncode != 0, test.stderr  # one slurmd node: sbatch read --nodes 2 and refused it
    assert "node configuration is not available" in test.stderr, test.stderr
