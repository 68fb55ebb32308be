"""A running job's files, read through the gateway and its node's executor (NATS request/reply):
listed and fetched while the job runs, confined to the job's directory (no symlink followed, no
``..``, regular files only), capped per download, the owner's only, and from the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = pytest.mark.e2e

CAP = 1_000_000
#: a training job: a log it appends to, a 1.5 MB checkpoint, a FIFO, and symlinks out of its directory
TRAINING = r"""
set -e
mkdir -p ckpt
i=0; while [ $i -lt 3 ]; do echo "epoch $i loss 0.$((9 - i))" >> train.log; i=$((i + 1)); done
head -c 1500000 /dev/urandom > ckpt/epoch2.pt
mkfifo pipe
ln -s /etc/hostname escape
ln -s /etc etcdir
touch ready
sleep 60
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("files"),
        [ExecutorConfig(node="files-a", slots=2)],
        env={"JOBWIRE_GATEWAY_FILE_MAX_BYTES": str(CAP)},
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def training(api: httpx.Client, stack: Stack) -> str:
    job = submit(api, script=TRAINING, expected_runtime=60)
    wait_state(api, job["id"], "running")
    ready = stack.home / "executors" / "files-a" / "jobs" / job["id"] / "1" / "work" / "ready"
    wait_for(ready.exists, 30, what="the job to write its files")
    return str(job["id"])


def test_files_of_a_running_job_are_listed_and_read(api: httpx.Client, stack: Stack, training: str) -> None:
    r = api.get(f"/v1/jobs/{training}/files")
    assert r.status_code == 200, r.text
    entries = {e["path"]: e for e in r.json()["items"]}
    assert entries["work/train.log"]["kind"] == "file"
    assert entries["work/ckpt/epoch2.pt"]["size"] == 1_500_000
    assert entries["work/escape"]["kind"] == "link" and entries["work/pipe"]["kind"] == "other"
    assert not any(p.startswith("work/etcdir/") for p in entries), "a symlinked directory is not entered"
    assert api.get(f"/v1/jobs/{training}").json()["state"] == "running"

    log = api.get(f"/v1/jobs/{training}/files/work/train.log")
    assert log.status_code == 200 and log.text == "epoch 0 loss 0.9\nepoch 1 loss 0.8\nepoch 2 loss 0.7\n"
    part = api.get(f"/v1/jobs/{training}/files/work/train.log", params={"offset": 6, "limit": 1})
    assert part.content == b"0"
    sub = api.get(f"/v1/jobs/{training}/files", params={"path": "work/ckpt"}).json()["items"]
    assert [e["path"] for e in sub] == ["work/ckpt/epoch2.pt"]


def test_a_large_file_is_capped_and_read_in_parts(api: httpx.Client, stack: Stack, training: str) -> None:
    on_disk = (
        stack.home / "executors" / "files-a" / "jobs" / training / "1" / "work" / "ckpt" / "epoch2.pt"
    ).read_bytes()
    whole = api.get(f"/v1/jobs/{training}/files/work/ckpt/epoch2.pt")
    assert whole.status_code == 413, whole.text
    assert whole.headers["content-type"] == "application/problem+json"
    assert "JOBWIRE_GATEWAY_FILE_MAX_BYTES" in whole.json()["detail"]
    got = b""
    for offset in (0, CAP):
        r = api.get(f"/v1/jobs/{training}/files/work/ckpt/epoch2.pt", params={"offset": offset, "limit": CAP})
        assert r.status_code == 200, r.text
        got += r.content
    assert got == on_disk  # 1.5 MB over three 512 KiB chunks per part


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("work/escape", 400),  # symlink to /etc/hostname
        ("work/etcdir/hostname", 400),  # through a symlinked directory
        ("work/pipe", 409),  # a FIFO: not a regular file (and the read must not block)
        ("work", 409),  # a directory
        ("work/nothing-here", 404),
    ],
)
def test_paths_that_leave_the_directory_or_are_not_files_are_refused(
    api: httpx.Client, training: str, path: str, status: int
) -> None:
    r = api.get(f"/v1/jobs/{training}/files/{path}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert b"127.0.0.1" not in r.content and b"root:" not in r.content


def test_dot_dot_is_refused(api: httpx.Client, training: str) -> None:
    r = api.get(f"/v1/jobs/{training}/files", params={"path": "work/../../.."})
    assert r.status_code == 400, r.text
    assert "leaves the job's directory" in r.json()["detail"]


def test_another_owner_sees_no_such_job(api: httpx.Client, training: str) -> None:
    made = api.post("/v1/tokens", json={"owner": "mallory", "scopes": ["jobs:read"]})
    assert made.status_code in (200, 201), made.text
    other = {"Authorization": f"Bearer {made.json()['secret']}"}
    r = api.get(f"/v1/jobs/{training}/files/work/train.log", headers=other)
    assert r.status_code == 404, r.text


def test_the_cli_lists_and_prints_files(stack: Stack, training: str) -> None:
    env = {**os.environ, "JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or ""}

    def cli(*args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "jobwire.client.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    listing = cli("files", training)
    assert "work/train.log" in listing and "work/ckpt/epoch2.pt" in listing
    assert cli("files", training, "work/train.log").splitlines()[-1] == "epoch 2 loss 0.7"
    assert '"work/ckpt/epoch2.pt"' in cli("files", training, "work/ckpt/", "--json")
