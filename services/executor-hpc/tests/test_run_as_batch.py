"""Run-as on the real SLURM and SGE (issue 12 item 1): each owner's batch job is submitted as its
account through ``sudo -n -u``, and what one owner's job does cannot reach another's.

An HPC executor in this process (root), real NATS, the accounts and sudoers drop-in of
``tests/fixtures/batch_accounts.py``. Bob's job tries to read alice's log, work file, outputs and the
executor's bookkeeping, to signal her job, to read the executor's environment, and to forge its own
exit code (0 left in the only exit_code file it can reach, the wrapper kept from replacing it), then
exits 3: every read fails, and the job fails with 3 as the batch system's accounting recorded it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, JobState, RunJob, new_job_id
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution.hpc import BatchSystem
from jobwire.execution.settings import ExecutorSettings
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.executor import HpcExecutor
from jobwire.executor_hpc.schedulers.sge import Sge
from jobwire.executor_hpc.schedulers.slurm import Slurm
from jobwire.executor_hpc.settings import HpcSettings
from jobwire.runtime.bus import Bus
from tests.fixtures.batch_accounts import BatchAccounts
from tests.support.harness import Harness, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("as_root")]

ALICE = r"""
echo alice-stdout-secret
echo alice-work-secret > work-secret.txt
echo alice-output > "$JOBWIRE_OUTPUT_DIR/result.txt"
id -un
: > ready
sleep 8
"""

#: each try prints DENIED or LEAK; then the job leaves 0 in its exit_code file and exits 3
BOB = r"""
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK $name"; else echo "DENIED $name"; fi; }
try alice-stdout cat "$A_DIR/stdout"
try alice-work cat "$A_DIR/work/work-secret.txt"
try alice-outputs ls "$A_DIR/outputs"
try alice-output-file cat "$A_DIR/outputs/result.txt"
try alice-run-json cat "$A_OWN/run.json"
try alice-batch-id sh -c 'echo 1 > "$A_OWN/batch_id"'
try alice-signal kill -KILL "$A_PID"
try executor-environ cat "/proc/$EXECUTOR_PID/environ"
try own-tree ls "$ROOT/.executor"
try list-jobs ls "$ROOT/jobs"
try my-batch-id sh -c 'echo 1 > "$B_OWN/batch_id"'
try my-reported sh -c ': > "$B_OWN/reported"'
env | grep -q '^PGPASSWORD=' && echo "LEAK pgpassword" || echo "DENIED pgpassword"
env | grep -q '^SUDO_' && echo "LEAK sudo-env" || echo "DENIED sudo-env"
echo "job-id=$JOBWIRE_JOB_ID"
echo bob-output > "$JOBWIRE_OUTPUT_DIR/mine.txt"
id -un
echo 0 > "$JOBWIRE_JOB_DIR/exit_code"
mkdir "$JOBWIRE_JOB_DIR/exit_code.tmp"
exit 3
"""
TRIES = [
    "alice-stdout",
    "alice-work",
    "alice-outputs",
    "alice-output-file",
    "alice-run-json",
    "alice-batch-id",
    "alice-signal",
    "executor-environ",
    "own-tree",
    "list-jobs",
    "my-batch-id",
    "my-reported",
    "pgpassword",
    "sudo-env",
]
OWNERS = {"alice": "alice", "bob": "bob", "carol": "refused", "dave": "missing"}


@pytest.fixture
async def harness(clean_bus: Bus, nats_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(clean_bus, nats_url, tmp_path)
    yield h
    for svc in h.services:
        await svc.stop()


@pytest.fixture
def root() -> Iterator[Path]:
    """The executor's root below a directory every account may pass (pytest's own are 0700)."""
    top = Path(tempfile.mkdtemp(prefix="jw-batch-root-", dir="/tmp"))
    top.chmod(0o711)
    yield top / "node"
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(params=["slurm", "sge"])
def adapter(request: pytest.FixtureRequest) -> BatchSystem:
    if request.param == "slurm":
        cluster = request.getfixturevalue("slurm_cluster")
        return Slurm(env=cluster.env)
    cell = request.getfixturevalue("sge_cell")
    return Sge(bin_dir=cell.bin, env=cell.env)


async def _executor(
    harness: Harness, root: Path, adapter: BatchSystem, accounts: BatchAccounts, tmp_path: Path
) -> HpcExecutor:
    mapping = tmp_path / "accounts"
    mapping.write_text("".join(f"{o}: {getattr(accounts, a)}\n" for o, a in OWNERS.items()))
    settings: ExecutorSettings = harness.settings(
        root=str(root), run_as="owner", accounts_file=str(mapping), backend="hpc"
    )
    hpc = HpcSettings(scheduler=adapter.name, poll_interval=0.3, accounting_wait=60)
    executor = HpcExecutor(settings, LocalTransport(), str(root), adapter, hpc)
    await harness.serve(executor)
    return executor


async def _run(harness: Harness, node: str, owner: str, spec: dict, job_id: str | None = None) -> str:
    job_id = job_id or new_job_id()
    msg = RunJob(job_id=job_id, attempt=1, node=node, owner=owner, spec=msgspec.convert(spec, JobSpec))
    await harness.bus.publish(sj.exec_subject(node, "run"), msg, msg_id=f"{job_id}:1:run")
    return job_id


async def test_owners_batch_jobs_run_as_their_accounts_and_cannot_reach_each_other(
    harness, adapter, root, batch_accounts, tmp_path, monkeypatch
):
    monkeypatch.setenv("PGPASSWORD", "executor-secret")  # the executor's own: no batch job sees it
    ex = await _executor(harness, root, adapter, batch_accounts, tmp_path)
    node = ex.settings.node
    a_job = await _run(harness, node, "alice", {"command": ["/bin/sh", "-c", ALICE]})
    a_dir = root / "jobs" / a_job / "1"
    a_own = root / ".executor" / "jobs" / a_job / "1"
    await eventually((a_dir / "work" / "ready").exists, timeout=90, what="alice's batch job to start")

    # the job's directory is its account's, 0700; the executor's tree is root's, 0700
    alice = pwd.getpwnam(batch_accounts.alice)
    for d in (a_dir, a_dir / "work", a_dir / "outputs"):
        info = d.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (alice.pw_uid, 0o700), d
    for d in (a_own, root / ".executor"):
        info = d.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o700), d
    assert (a_own / "batch_id").read_text().strip().isdigit()
    assert not (a_dir / "batch_id").exists() and not (a_dir / "run.json").exists()

    b_job = new_job_id()
    env = {
        "A_DIR": str(a_dir),
        "A_OWN": str(a_own),
        "A_PID": (a_dir / "pid").read_text().strip(),
        "B_OWN": str(root / ".executor" / "jobs" / b_job / "1"),
        "ROOT": str(root),
        "EXECUTOR_PID": str(os.getpid()),
    }
    await _run(harness, node, "bob", {"command": ["/bin/sh", "-c", BOB], "env": env}, b_job)
    b_done = await harness.wait(b_job, "finished", timeout=120)
    out = await harness.text(b_job, "stdout")
    assert [line for line in out.splitlines() if line.startswith("LEAK")] == [], out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("DENIED")] == TRIES, out
    assert out.splitlines()[-2:] == [f"job-id={b_job}", batch_accounts.bob]
    # the job left 0 in the exit_code file it could reach: accounting's 3 is what is reported
    assert (root / "jobs" / b_job / "1" / "exit_code").read_text().strip() == "0"
    assert (b_done.outcome, b_done.exit_code) == (JobState.FAILED, 3), b_done
    assert [a.name for a in b_done.artifacts] == ["mine.txt"]

    a_done = await harness.wait(a_job, "finished", timeout=120)
    assert (a_done.outcome, a_done.exit_code) == (JobState.SUCCEEDED, 0), a_done
    assert (await harness.text(a_job, "stdout")).splitlines() == ["alice-stdout-secret", batch_accounts.alice]
    assert [a.name for a in a_done.artifacts] == ["result.txt"]
    store = await harness.bus.artifacts()
    assert (await store.get(f"{a_job}/result.txt")).data == b"alice-output\n"
    assert (await store.get(f"{b_job}/mine.txt")).data == b"bob-output\n"


async def test_an_account_sudo_refuses_or_that_does_not_exist_fails_the_job_with_the_reason(
    harness, adapter, root, batch_accounts, tmp_path
):
    ex = await _executor(harness, root, adapter, batch_accounts, tmp_path)
    refused = await _run(harness, ex.settings.node, "carol", {"command": ["true"]})
    done = await harness.wait(refused, "finished", timeout=60)
    assert done.outcome is JobState.FAILED
    assert f"cannot submit as the account {batch_accounts.refused!r}" in done.reason, done.reason
    submit = "/usr/bin/sbatch" if adapter.name == "slurm" else "/usr/lib/gridengine/qsub"
    assert f"ALL=({batch_accounts.refused}) NOPASSWD:SETENV: {submit}" in done.reason, done.reason
    assert not harness.of(refused, "running")

    missing = await _run(harness, ex.settings.node, "dave", {"command": ["true"]})
    done = await harness.wait(missing, "finished", timeout=60)
    assert done.outcome is JobState.FAILED
    assert f"the account {batch_accounts.missing!r} does not exist" in done.reason, done.reason
