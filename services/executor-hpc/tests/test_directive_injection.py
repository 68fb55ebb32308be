"""Issue 12: no user text in a generated batch script, checked by the batch systems themselves.

SGE's ``qsub -verify`` prints what qsub parsed from a script without submitting it, and SGE reads
``#$`` lines anywhere in the script, even inside shell quotes; ``sbatch --test-only`` validates a
script and says where it would run. Each hostile string of the issue goes into a job's command,
args, env and setup; the script jobwire generates carries only jobwire's directives. The same string
in the script's text (as the old builder wrote it: ``export V='...'``) is read as a directive by the
same command, so the check can fail.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec, Resources, SgeOptions, SlurmOptions
from jobwire.execution.hpc import BatchRequest, BatchSystem
from jobwire.executor_hpc.schedulers.sge import Sge
from jobwire.executor_hpc.schedulers.slurm import Slurm

pytestmark = pytest.mark.integration

SGE_HOSTILE = [
    "ok\n#$ -q root.q\n#$ -o /etc/cron.d/jw",
    "hi\n#$ -t 1-50000\n#$ -l gpu=8",
    "x'\n#$ -q root.q\n'",
]
SLURM_HOSTILE = [
    "ok\n#SBATCH --partition=root\n#SBATCH --array=1-50000",
    "hi\n#SBATCH --nodes=8\n#SBATCH --gres=gpu:8",
]


def write_job(adapter: BatchSystem, tmp_path: Path, hostile: str, options: object) -> Path:
    """The batch script and data files of a job whose every user field holds ``hostile``."""
    d = tmp_path / f"job{abs(hash(hostile)) % 10**8}"
    d.mkdir()
    field = adapter.options_field
    assert field is not None
    spec = JobSpec(
        command=["echo", hostile], args=[hostile], env={"V": hostile}, resources=Resources(walltime=60)
    )
    setattr(spec, field, options)
    getattr(spec, field).setup = f"module load x\n{hostile}"  # past the decode rule that refuses it
    req = BatchRequest(
        job_id="01a2b3c4-0000-7000-8000-0000000000c1",
        attempt=1,
        spec=spec,
        job_dir=str(d),
        stdout=str(d / "stdout"),
        stderr=str(d / "stderr"),
        argv=["/bin/sh", str(d / "wrapper.sh"), str(d), str(d / "work"), "0", "echo", hostile, hostile],
        env={"V": hostile},
        walltime=60,
    )
    script = adapter.build_script(req)
    for name, data in adapter.launch_files(req).items():
        (d / name).write_bytes(data)
    (d / "batch.sh").write_text(script)
    return d / "batch.sh"


def as_the_old_builder_wrote_it(script: Path, hostile: str) -> Path:
    """The same text where the old builder put it: a setup fragment of the hostile lines right after
    the directives (SLURM reads ``#SBATCH`` lines until the first command), then ``export V='...'``."""
    old = script.with_name("old.sh")
    lines = script.read_text().splitlines()
    head = [line for line in lines if line.startswith(("#!", "#$", "#SBATCH"))]
    setup = [line for line in hostile.splitlines() if line.startswith("#")]
    old.write_text("\n".join([*head, *setup, f"export V={shlex.quote(hostile)}", "true"]) + "\n")
    return old


@pytest.mark.backend("sge")
@pytest.mark.parametrize("hostile", SGE_HOSTILE)
def test_qsub_verify_reads_only_jobwires_directives(sge_cell, tmp_path, hostile):
    script = write_job(Sge(), tmp_path, hostile, SgeOptions())
    verify = sge_cell.run("qsub", "-verify", str(script))
    assert verify.returncode == 0, verify.stderr
    parsed = verify.stdout
    assert re.search(r"^job_name:\s+jw-0000000000c1-1$", parsed, re.M), parsed
    assert f"stdout_path_list:           NONE:NONE:{script.parent}/stdout" in parsed, parsed
    for injected in ("root.q", "hard_queue_list", "job-array tasks", "gpu=8", "/etc/cron.d"):
        assert injected not in parsed, parsed
    # the checker sees an injection where one is: the old script's text makes qsub read the lines
    old = sge_cell.run("qsub", "-verify", str(as_the_old_builder_wrote_it(script, hostile))).stdout
    assert "root.q" in old or "job-array tasks" in old, old


@pytest.mark.backend("slurm")
@pytest.mark.parametrize("hostile", SLURM_HOSTILE)
def test_sbatch_test_only_accepts_the_script_as_jobwire_wrote_it(slurm_cluster, tmp_path, hostile):
    script = write_job(Slurm(), tmp_path, hostile, SlurmOptions(partition="debug"))
    text = script.read_text()
    for injected in ("--partition=root", "--array", "50000", "gpu:8", "--nodes=8"):
        assert injected not in text, text
    test = slurm_cluster.run("sbatch", "--test-only", str(script))
    assert test.returncode == 0, test.stderr
    assert "in partition debug" in test.stderr and "on nodes localhost" in test.stderr, test.stderr
    # the same text in the header is read: sbatch refuses the partition, the array or the node count
    old = slurm_cluster.run("sbatch", "--test-only", str(as_the_old_builder_wrote_it(script, hostile)))
    assert old.returncode != 0, old.stderr
