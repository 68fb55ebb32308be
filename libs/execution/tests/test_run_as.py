"""Run-as on the local executor, attacked (issue 12 item 1): two owners, each job as its own account.

A real executor (in this process, as root), real NATS, real accounts made with useradd. Bob's job
tries each read and write the audit did with one account for everyone: alice's log, work files and
outputs, the executor's token file and /proc/<executor>/environ, alice's exit code and state, the
executor's tree, its own exit code. Every one must fail, and each owner's own job still runs as its
account, with its outputs uploaded.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, JobState, RunJob, new_job_id
from jobwire.contracts.v1 import subjects as sj
from jobwire.execution.accounts import sanitise

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("as_root"),
]

ALICE = r"""
echo alice-stdout-secret
echo alice-work-secret > work-secret.txt
echo alice-output > "$JOBWIRE_OUTPUT_DIR/result.txt"
id -un
echo "home=$HOME"
: > ready
sleep 4
"""

#: each attempt prints DENIED or LEAK; the job then tries to record its own exit code as 0 and exits 3
BOB = r"""
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK $name"; else echo "DENIED $name"; fi; }
try alice-stdout cat "$A_OWN/stdout"
try alice-work cat "$A_DIR/work/work-secret.txt"
try alice-outputs ls "$A_DIR/outputs"
try alice-output-file cat "$A_DIR/outputs/result.txt"
try alice-run-json cat "$A_OWN/run.json"
try token cat "$TOKEN"
try executor-environ cat "/proc/$EXECUTOR_PID/environ"
try alice-exit-code sh -c 'echo 77 > "$A_OWN/exit_code"'
try alice-state sh -c 'echo {} > "$A_OWN/state.json"'
try alice-signal kill -KILL -- "-$A_PID"
try list-jobs ls "$ROOT/jobs"
try own-tree ls "$ROOT/.executor"
try my-exit-code sh -c 'echo 0 > "$B_OWN/exit_code"'
try my-pid sh -c 'echo 1 > "$B_OWN/pid"'
ln -s "$A_DIR/outputs/result.txt" "$JOBWIRE_OUTPUT_DIR/stolen.txt"
mv "$LOOSE/root-only" "$JOBWIRE_OUTPUT_DIR/moved.txt" && echo moved
echo bob-output > "$JOBWIRE_OUTPUT_DIR/mine.txt"
id -un
exit 3
"""
ATTEMPTS = [
    "alice-stdout",
    "alice-work",
    "alice-outputs",
    "alice-output-file",
    "alice-run-json",
    "token",
    "executor-environ",
    "alice-exit-code",
    "alice-state",
    "alice-signal",
    "list-jobs",
    "own-tree",
    "my-exit-code",
    "my-pid",
]


@pytest.fixture
def loose_dir() -> Iterator[Path]:
    """A world-writable directory without the sticky bit holding a root-only file: the job may move
    the file (a rename needs no read right) but must never get it uploaded."""
    d = Path(tempfile.mkdtemp(prefix="jw-runas-loose-", dir="/tmp"))
    d.chmod(0o777)
    (d / "root-only").write_text("root's secret\n")
    (d / "root-only").chmod(0o600)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _reachable_dir(prefix: str) -> Path:
    """A directory below /tmp other accounts can pass through (pytest's own is 0700)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o711)
    return d


@pytest.fixture
def places() -> Iterator[tuple[Path, Path]]:
    root, homes = _reachable_dir("jw-runas-root-"), _reachable_dir("jw-runas-homes-")
    yield root / "node", homes
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(homes, ignore_errors=True)


@pytest.fixture
def owners() -> Iterator[tuple[str, str]]:
    tag = secrets.token_hex(3)
    pair = (f"alice-{tag}", f"bob-{tag}")
    yield pair
    for owner in pair:
        subprocess.run(["userdel", sanitise(owner, "jw-")], capture_output=True, check=False)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """The executor's credentials, as ~/.config/jobwire/token is: 0600 in a 0700 directory."""
    d = _reachable_dir("jw-runas-config-")
    d.chmod(0o700)
    f = d / "token"
    f.write_text("jw_secret_admin_token\n")
    f.chmod(0o600)
    yield f
    shutil.rmtree(d, ignore_errors=True)


async def _run(
    harness, node: str, owner: str, spec: dict, job_id: str | None = None, timeout: float | None = None
) -> str:
    job_id = job_id or new_job_id()
    spec_ = msgspec.convert(spec, JobSpec)
    msg = RunJob(job_id=job_id, attempt=1, node=node, owner=owner, spec=spec_, timeout=timeout)
    await harness.bus.publish(sj.exec_subject(node, "run"), msg, msg_id=f"{job_id}:1:run")
    return job_id


async def test_owners_jobs_run_as_their_accounts_and_cannot_reach_each_other(
    harness, until, places, owners, token_file, loose_dir
):
    root, homes = places
    alice, bob = owners
    svc = await harness.executor(
        run_as="owner", create_accounts=True, accounts_home=str(homes), root=str(root)
    )
    a_job = await _run(harness, svc.node, alice, {"command": ["/bin/sh", "-c", ALICE]})
    a_dir = root / "jobs" / a_job / "1"
    a_own = root / ".executor" / "jobs" / a_job / "1"
    await until((a_dir / "work" / "ready").exists, timeout=15, what="alice's job to write its files")

    # what the executor made: the job's directory is its account's, 0700; the executor's is root's
    a_account = pwd.getpwnam(sanitise(alice, "jw-"))
    for d in (a_dir, a_dir / "work", a_dir / "outputs"):
        info = d.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (a_account.pw_uid, 0o700), d
    for d in (a_own, root / ".executor"):
        info = d.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o700), d
    assert stat.S_IMODE((root / "jobs").stat().st_mode) == 0o711
    assert stat.S_IMODE((root / "jobs" / a_job).stat().st_mode) == 0o711

    b_job = new_job_id()
    env = {
        "A_DIR": str(a_dir),
        "A_OWN": str(a_own),
        "A_PID": (a_own / "pid").read_text().strip(),
        "B_OWN": str(root / ".executor" / "jobs" / b_job / "1"),
        "ROOT": str(root),
        "TOKEN": str(token_file),
        "EXECUTOR_PID": str(os.getpid()),
        "LOOSE": str(loose_dir),
    }
    await _run(harness, svc.node, bob, {"command": ["/bin/sh", "-c", BOB], "env": env}, b_job)
    b_done = await harness.wait(b_job, "finished", timeout=20)
    out = await harness.text(b_job, "stdout")
    assert [line for line in out.splitlines() if line.startswith("LEAK")] == [], out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("DENIED")] == ATTEMPTS
    assert out.splitlines()[-2:] == ["moved", sanitise(bob, "jw-")]
    # the exit code is the one the job exited with, not the 0 it tried to record
    assert (b_done.outcome, b_done.exit_code) == (JobState.FAILED, 3)
    # its own output is uploaded; the symlink to alice's output and root's file it moved in are not
    assert sorted(a.name for a in b_done.artifacts) == ["mine.txt"]
    assert (root / "jobs" / b_job / "1" / "outputs" / "moved.txt").stat().st_uid == 0

    a_done = await harness.wait(a_job, "finished", timeout=20)
    assert (a_done.outcome, a_done.exit_code) == (JobState.SUCCEEDED, 0)
    a_out = (await harness.text(a_job, "stdout")).splitlines()
    assert a_out == ["alice-stdout-secret", a_account.pw_name, f"home={a_account.pw_dir}"]
    assert a_account.pw_dir.startswith(str(homes))
    assert [a.name for a in a_done.artifacts] == ["result.txt"]
    store = await harness.bus.artifacts()
    assert (await store.get(f"{a_job}/result.txt")).data == b"alice-output\n"
    assert (await store.get(f"{b_job}/mine.txt")).data == b"bob-output\n"


FIXED = r"""
id -un
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK $name"; else echo "DENIED $name"; fi; }
try token cat "$TOKEN"
try executor-environ cat "/proc/$EXECUTOR_PID/environ"
try own-tree ls "$ROOT/.executor"
echo out > "$JOBWIRE_OUTPUT_DIR/o.txt"
"""


@pytest.fixture
def sandbox() -> Iterator[str]:
    name = f"jw-sandbox-{secrets.token_hex(3)}"
    yield name
    subprocess.run(["userdel", name], capture_output=True, check=False)


async def test_fixed_runs_every_owner_as_one_account_apart_from_the_executor(
    harness, places, owners, token_file, sandbox
):
    root, homes = places
    svc = await harness.executor(
        run_as=f"fixed:{sandbox}", create_accounts=True, accounts_home=str(homes), root=str(root)
    )
    env = {"TOKEN": str(token_file), "EXECUTOR_PID": str(os.getpid()), "ROOT": str(root)}
    jobs = [
        await _run(harness, svc.node, o, {"command": ["/bin/sh", "-c", FIXED], "env": env}) for o in owners
    ]
    for job in jobs:
        done = await harness.wait(job, "finished", timeout=20)
        out = await harness.text(job, "stdout")
        assert (done.outcome, done.exit_code) == (JobState.SUCCEEDED, 0), out
        assert out.splitlines() == [sandbox, "DENIED token", "DENIED executor-environ", "DENIED own-tree"]
        assert [a.name for a in done.artifacts] == ["o.txt"]
        assert (root / "jobs" / job / "1").stat().st_uid == pwd.getpwnam(sandbox).pw_uid


async def test_an_owner_without_an_account_is_refused_when_none_may_be_created(harness, places, owners):
    root, _ = places
    svc = await harness.executor(run_as="owner", root=str(root))
    job = await _run(harness, svc.node, owners[0], {"command": ["true"]})
    done = await harness.wait(job, "finished")
    assert done.outcome is JobState.FAILED
    assert f"{sanitise(owners[0], 'jw-')!r} does not exist" in done.reason
    assert not harness.of(job, "running")


async def test_cancel_and_timeout_reach_a_job_running_as_its_account(harness, until, places, owners):
    """The executor (root) signals the group of a job that runs as another uid: a cancel ends it and
    its child; a job that ignores TERM past its timeout is killed and its exit code still recorded."""
    root, homes = places
    svc = await harness.executor(
        run_as="owner", create_accounts=True, accounts_home=str(homes), root=str(root), kill_grace=0.5
    )
    job = await _run(
        harness,
        svc.node,
        owners[0],
        {"command": ["/bin/sh", "-c", "sleep 60 & echo $! > child.pid; echo up; wait"]},
    )
    child_file = root / "jobs" / job / "1" / "work" / "child.pid"
    await until(lambda: child_file.exists() and child_file.read_text().strip() != "", what="the child")
    child = int(child_file.read_text())
    assert Path(f"/proc/{child}").stat().st_uid == pwd.getpwnam(sanitise(owners[0], "jw-")).pw_uid
    await harness.cancel(svc.node, job, reason="user asked", grace=5)
    done = await harness.wait(job, "finished")
    assert (done.outcome, done.reason, done.exit_code) == (JobState.CANCELLED, "user asked", 143)
    await until(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), what="the child killed")

    stuck = await _run(
        harness, svc.node, owners[1], {"command": ["/bin/sh", "-c", "trap '' TERM; sleep 30"]}, timeout=1
    )
    ended = await harness.wait(stuck, "finished", timeout=15)
    assert (ended.outcome, ended.exit_code) == (JobState.TIMED_OUT, 137)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_killed_executor_adopts_its_run_as_jobs_after_a_restart(
    harness, until, places, owners, tmp_path
):
    """kill -9 of a run-as executor: the job (its wrapper the executor's, detached) ends meanwhile and
    the next executor process reports its own exit code and whole log, once."""
    from .test_restart import start_executor, wait_heartbeat

    root, homes = places
    node = f"runas-restart-{secrets.token_hex(3)}"
    extra = {
        "JOBWIRE_EXECUTOR_RUN_AS": "owner",
        "JOBWIRE_EXECUTOR_CREATE_ACCOUNTS": "1",
        "JOBWIRE_EXECUTOR_ACCOUNTS_HOME": str(homes),
    }
    log = tmp_path / "executor.log"
    proc = start_executor(node, root, harness.nats_url, log, extra)
    try:
        await wait_heartbeat(harness.bus, node)
        job = await _run(
            harness, node, owners[0], {"command": ["/bin/sh", "-c", "echo a; sleep 1.5; id -un; exit 6"]}
        )
        await harness.wait(job, "running", timeout=20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        exit_file = root / ".executor" / "jobs" / job / "1" / "exit_code"
        await until(exit_file.exists, timeout=10, what="the job to end while no executor runs")
        proc = start_executor(node, root, harness.nats_url, log, extra)
        done = await harness.wait(job, "finished", timeout=20)
        await harness.settle(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert (done.outcome, done.exit_code) == (JobState.FAILED, 6), log.read_text()[-3000:]
    assert len(harness.of(job, "finished")) == 1
    assert await harness.text(job, "stdout") == f"a\n{sanitise(owners[0], 'jw-')}\n"


async def test_loader_variables_in_a_run_as_jobs_env_are_refused(harness, places, owners):
    """The wrapper, setsid, setpriv and mv run as root with the job's environment: ``LD_PRELOAD`` of a
    library the owner wrote would run their code as root (checked by hand: a constructor writing a
    file when euid is 0 ran in 5 root processes). Such a job fails before anything is written."""
    root, homes = places
    svc = await harness.executor(
        run_as="owner", create_accounts=True, accounts_home=str(homes), root=str(root)
    )
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH", "GLIBC_TUNABLES"):
        job = await _run(harness, svc.node, owners[0], {"command": ["true"], "env": {name: "/tmp/x"}})
        done = await harness.wait(job, "finished")
        assert done.outcome is JobState.FAILED and f"env {name}:" in done.reason, done
        assert not harness.of(job, "running")
        assert not (root / "jobs" / job).exists()
    fine = await _run(harness, svc.node, owners[0], {"command": ["true"], "env": {"OLD_PRELOAD": "1"}})
    assert (await harness.wait(fine, "finished")).outcome is JobState.SUCCEEDED
