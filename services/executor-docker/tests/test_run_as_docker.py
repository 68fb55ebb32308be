"""Run-as on the Docker executor (issue 12 item 1): each owner's container as its own account.

A real engine and the test image, a DockerExecutor driven directly (as root), real accounts made with
useradd. Alice's container keeps a secret in its work directory; bob's container binds the whole
shared root (an allowed root) and tries to read alice's attempt directory: every read fails, since
her directory is her uid's, 0700, and his container runs as his uid. Each container's ``id -u`` is
its owner's account, and each still writes its own work and outputs.
"""

from __future__ import annotations

import asyncio
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, RunJob, new_job_id
from jobwire.execution import ExecutorSettings, RunHandle, StartRefused
from jobwire.execution.accounts import sanitise
from jobwire.executor_docker.executor import DockerExecutor
from jobwire.executor_docker.settings import DockerSettings

from .conftest import IMAGE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.backend("docker"),
    pytest.mark.usefixtures("as_root"),
]

ALICE = (
    "cd /jobwire/work && echo alice-secret > secret.txt; "
    'echo out > "$JOBWIRE_OUTPUT_DIR/a.txt"; id -u; sleep 3'
)
BOB = r"""
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK $name"; else echo "DENIED $name"; fi; }
try alice-dir ls "/shared/jobs/$A_JOB/1"
try alice-work cat "/shared/jobs/$A_JOB/1/work/secret.txt"
try alice-outputs ls "/shared/jobs/$A_JOB/1/outputs"
try alice-run-json cat "/shared/.executor/jobs/$A_JOB/1/run.json"
try alice-stdout cat "/shared/.executor/jobs/$A_JOB/1/stdout"
try list-jobs ls /shared/jobs
try list-executor-files ls /shared/.executor
try own-executor-files sh -c 'echo x > "/shared/.executor/jobs/$JOBWIRE_JOB_ID/1/run.json"'
try executor-files-in-job-dir ls /jobwire/.executor /jobwire/logs
echo mine > /jobwire/work/mine.txt && echo bob > "$JOBWIRE_OUTPUT_DIR/b.txt" && echo wrote
id -u
"""


@pytest.fixture
def owners() -> Iterator[tuple[str, str]]:
    tag = secrets.token_hex(3)
    pair = (f"alice-{tag}", f"bob-{tag}")
    yield pair
    for owner in pair:
        subprocess.run(["userdel", sanitise(owner, "jw-")], capture_output=True, check=False)


@pytest.fixture
def shared() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="jw-dock-runas-", dir="/tmp"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def _until_done(ex: DockerExecutor, handles: list[RunHandle], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = await ex.poll(handles)
        if all(s.ended for s in status.values()):
            return status
        assert time.monotonic() < deadline, f"containers still running: {status}"
        await asyncio.sleep(0.3)


def _run(node: str, owner: str, spec: dict) -> RunJob:
    return RunJob(job_id=new_job_id(), attempt=1, node=node, owner=owner, spec=msgspec.convert(spec, JobSpec))


async def test_each_owners_container_runs_as_its_account_and_cannot_read_the_others(
    engine, owners, shared, tmp_path
) -> None:
    alice, bob = owners
    node = f"dock-runas-{secrets.token_hex(3)}"
    settings = ExecutorSettings(
        node=node,
        root=str(tmp_path),
        run_as="owner",
        create_accounts=True,
        accounts_home=str(tmp_path / "homes"),
    )
    ex = DockerExecutor(settings, DockerSettings(shared_root=str(shared)))
    await ex.open()
    try:
        a_run = _run(node, alice, {"image": IMAGE, "command": ["sh", "-c", ALICE]})
        a = await ex.start(a_run)
        secret = shared / "jobs" / a_run.job_id / "1" / "work" / "secret.txt"
        deadline = time.monotonic() + 60
        while not secret.exists():
            [early] = (await ex.poll([a])).values()
            log = (await ex.read_log(a, "stderr", 0, 4096)).decode()
            assert not early.ended, f"alice's container ended at once: {early} {log}"
            assert time.monotonic() < deadline, "alice's container never wrote its secret"
            await asyncio.sleep(0.2)
        b_spec = {
            "image": IMAGE,
            "command": ["sh", "-c", BOB],
            "env": {"A_JOB": a_run.job_id},
            "docker": {"mounts": [{"source": str(shared), "target": "/shared", "read_only": True}]},
        }
        b_run = _run(node, bob, b_spec)
        b = await ex.start(b_run)
        status = await _until_done(ex, [a, b])
        assert status[a.key].exit_code == 0 and status[b.key].exit_code == 0, status

        a_uid = pwd.getpwnam(sanitise(alice, "jw-")).pw_uid
        b_uid = pwd.getpwnam(sanitise(bob, "jw-")).pw_uid
        assert a_uid != b_uid and 0 not in (a_uid, b_uid)
        a_out = (await ex.read_log(a, "stdout", 0, 65536)).decode()
        b_out = (await ex.read_log(b, "stdout", 0, 65536)).decode().splitlines()
        assert a_out.split() == [str(a_uid)]
        assert b_out[-1] == str(b_uid)
        assert "wrote" in b_out
        denied = [line for line in b_out if line.startswith(("DENIED", "LEAK"))]
        assert denied == [
            "DENIED alice-dir",
            "DENIED alice-work",
            "DENIED alice-outputs",
            "DENIED alice-run-json",
            "DENIED alice-stdout",
            "DENIED list-jobs",
            "DENIED list-executor-files",
            "DENIED own-executor-files",
            "DENIED executor-files-in-job-dir",
        ]
        # on the host: each attempt directory is its account's, 0700; the executor's files are root's
        a_dir = shared / "jobs" / a_run.job_id / "1"
        assert (a_dir.stat().st_uid, a_dir.stat().st_mode & 0o777) == (a_uid, 0o700)
        a_own = shared / ".executor" / "jobs" / a_run.job_id / "1"
        assert (a_own.stat().st_uid, a_own.stat().st_mode & 0o777) == (0, 0o700)
        assert ((shared / ".executor").stat().st_mode & 0o777) == 0o700
        assert sorted(p.name for p in a_dir.iterdir()) == ["outputs", "work"]
        assert sorted(o.name for o in await ex.list_outputs(b)) == ["b.txt"]
        assert sorted(o.name for o in await ex.list_outputs(a)) == ["a.txt"]
    finally:
        await ex.close()


async def test_root_and_foreign_users_are_refused(engine, owners, shared, tmp_path) -> None:
    alice, _ = owners
    node = f"dock-runas-{secrets.token_hex(3)}"
    owner_ex = DockerExecutor(
        ExecutorSettings(
            node=node,
            root=str(tmp_path),
            run_as="owner",
            create_accounts=True,
            accounts_home=str(tmp_path / "homes"),
        ),
        DockerSettings(shared_root=str(shared)),
    )
    await owner_ex.open()
    try:
        asks_root = _run(node, alice, {"image": IMAGE, "command": ["id"], "docker": {"user": "0"}})
        with pytest.raises(StartRefused, match="run as the account"):
            await owner_ex.start(asks_root)
    finally:
        await owner_ex.close()
    self_ex = DockerExecutor(
        ExecutorSettings(node=node, root=str(tmp_path)), DockerSettings(shared_root=str(shared))
    )
    await self_ex.open()
    try:
        with pytest.raises(StartRefused, match="JOBWIRE_DOCKER_ALLOW_ROOT=1"):
            await self_ex.start(
                _run(node, alice, {"image": IMAGE, "command": ["id"], "docker": {"user": "root"}})
            )
    finally:
        await self_ex.close()
