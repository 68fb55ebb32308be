"""An executor upgraded past the one attempt layout (issue 16) keeps following the containers an older
one started: their run.json, log indexes and logs were inside the job's directory (``.executor/``,
``logs/``); a restart moves them to where every backend keeps them now, instead of removing the
container as one without a directory. Real engine, a DockerExecutor driven directly.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import time
from pathlib import Path

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, RunJob, new_job_id
from jobwire.execution import ExecutorSettings, RunHandle
from jobwire.execution.attempt import AttemptDir
from jobwire.executor_docker.executor import DockerExecutor
from jobwire.executor_docker.layout import move_split_attempt
from jobwire.executor_docker.settings import DockerSettings

from .conftest import IMAGE

JOB = "echo before; sleep 3; echo after; exit 4"


async def _log(ex: DockerExecutor, h: RunHandle) -> str:
    return (await ex.read_log(h, "stdout", 0, 65536)).decode()


def _as_an_old_executor_left_it(d: AttemptDir) -> None:
    """The files moved back where executors before the one layout kept them."""
    own, logs = Path(d.path) / ".executor", Path(d.path) / "logs"
    own.mkdir(mode=0o700)
    logs.mkdir()
    for f in Path(d.private).iterdir():
        f.rename((logs if f.name in ("stdout", "stderr") else own) / f.name)
    Path(d.private).rmdir()


@pytest.mark.integration
@pytest.mark.backend("docker")
async def test_a_container_started_in_the_old_layout_is_adopted_and_followed_to_its_end(
    engine, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    node = f"dock-upgrade-{secrets.token_hex(3)}"

    def executor() -> DockerExecutor:
        settings = ExecutorSettings(node=node, root=str(tmp_path / "root"))
        return DockerExecutor(settings, DockerSettings(shared_root=str(shared)))

    spec = msgspec.convert({"image": IMAGE, "command": ["sh", "-c", JOB]}, JobSpec)
    run = RunJob(job_id=new_job_id(), attempt=1, node=node, owner="alice", spec=spec)
    old = executor()
    await old.open()
    try:
        h = await old.start(run)
        deadline = time.monotonic() + 60
        while "before" not in await _log(old, h):
            assert time.monotonic() < deadline, "the container never printed its first line"
            await asyncio.sleep(0.2)
    finally:
        await old.close()
    d = AttemptDir.of(str(shared), run.job_id, 1)
    _as_an_old_executor_left_it(d)

    new = executor()
    await new.open()
    try:
        [adopted] = await new.adopt()
        assert adopted.key == (run.job_id, 1)
        deadline = time.monotonic() + 60
        while not (status := (await new.poll([adopted]))[adopted.key]).ended:
            assert time.monotonic() < deadline, "the adopted container never ended"
            await asyncio.sleep(0.3)
        assert status.exit_code == 4, status
        assert await _log(new, adopted) == "before\nafter\n"
        assert os.listdir(Path(d.path) / ".executor") == [] and (Path(d.private) / "run.json").is_file()
        await new.mark_reported(adopted)
    finally:
        await new.close()


@pytest.mark.unit
@pytest.mark.usefixtures("as_root")
def test_an_old_layouts_files_are_taken_only_from_a_directory_the_executor_owns(tmp_path: Path) -> None:
    """Under run-as the job's account owns the directory around ``.executor``: one it made is not trusted."""
    d = AttemptDir.of(str(tmp_path), "j1", 1)
    planted = Path(d.path) / ".executor"
    planted.mkdir(parents=True)
    (planted / "run.json").write_text("{}")
    os.chown(planted, 65534, 65534)
    assert not move_split_attempt(d)
    assert not Path(d.private).exists() and (planted / "run.json").exists()
    os.chown(planted, 0, 0)
    link = Path(d.path) / "elsewhere"
    shutil.move(planted, link)
    os.symlink(link, planted)
    assert not move_split_attempt(d)
    os.unlink(planted)
    shutil.move(link, planted)
    assert move_split_attempt(d) and (Path(d.private) / "run.json").read_text() == "{}"
