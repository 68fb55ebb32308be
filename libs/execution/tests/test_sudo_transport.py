"""The account's transport (``sudo -n -u``) on this machine: what the SSH executor reads and writes
as a job's account, checked on real files of a real account (root may sudo to any account, so no
sudoers rule is needed here; the SSH suite runs it through a login that has one)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobwire.execution.accounts import StartRefused, create_account
from jobwire.execution.transport.confined import NotRegular, PathRefused
from jobwire.execution.transport.local import LocalTransport
from jobwire.execution.transport.sudo import SudoRefused, SudoTransport

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("as_root")]


@pytest.fixture
def place() -> Iterator[tuple[Path, list[str]]]:
    """A directory other accounts can pass, and two fresh accounts."""
    d = Path(tempfile.mkdtemp(prefix="jw-sudo-", dir="/tmp"))
    d.chmod(0o755)
    names = [f"jw-sudo-{secrets.token_hex(3)}" for _ in range(2)]
    for name in names:
        create_account(name, str(d / "homes"))
    yield d, names
    for name in names:
        subprocess.run(["userdel", name], capture_output=True, check=False)
    shutil.rmtree(d, ignore_errors=True)


async def test_the_account_makes_reads_and_writes_only_its_own(place) -> None:
    d, (mine, other) = place
    jt = SudoTransport(LocalTransport(), mine, login="jobwire")
    who = await jt.whoami()
    assert (who.uid, who.home) == (pwd.getpwnam(mine).pw_uid, str(d / "homes" / mine))

    jobs = d / "jobs"
    jobs.mkdir(mode=0o1733)
    jobs.chmod(0o1733)
    job = jobs / "j1"
    await jt.claim_dirs([str(job), str(job / "1")], [str(job / "1" / "outputs")])
    out = job / "1" / "outputs"
    for p in (job, job / "1", out):
        assert (p.stat().st_uid, p.stat().st_mode & 0o777) == (who.uid, 0o700)

    await jt.write_file(str(out / "a.txt"), b"hello\n", 0o640)
    assert (out / "a.txt").stat().st_uid == who.uid and (out / "a.txt").stat().st_mode & 0o777 == 0o640
    assert await jt.read_file(str(out / "a.txt"), 1, 3) == b"ell"
    assert await jt.read_confined(str(out), "a.txt", 2, 100) == (b"llo\n", 6)

    # links, another's file, a FIFO: each refused as the local reader refuses them
    os.symlink("/etc/hostname", out / "link")
    os.link(out / "a.txt", out / "second-name")
    (out / "roots").write_text("root's\n")
    (out / "roots").chmod(0o644)
    os.mkfifo(out / "fifo")
    with pytest.raises(PathRefused, match="symlink"):
        await jt.read_confined(str(out), "link", 0, 10)
    with pytest.raises(PathRefused, match="hard link"):
        await jt.read_confined(str(out), "second-name", 0, 10)
    with pytest.raises(PathRefused, match="uid 0"):
        await jt.read_confined(str(out), "roots", 0, 10)
    (out / "roots").chmod(0o600)
    with pytest.raises(PathRefused, match="cannot be read"):
        await jt.read_confined(str(out), "roots", 0, 10)
    with pytest.raises(NotRegular):
        await jt.read_confined(str(out), "fifo", 0, 10)
    with pytest.raises(FileNotFoundError):
        await jt.read_confined(str(out), "missing", 0, 10)
    entries, left = await jt.list_confined(str(job / "1"), "outputs", 100)
    kinds = {e.path: e.kind for e in entries}
    assert kinds["outputs/a.txt"] == "file" and kinds["outputs/link"] == "link" and left == 0

    # a directory another account made first is never taken as the job's own
    theirs = SudoTransport(LocalTransport(), other, login="jobwire")
    await theirs.claim_dirs([str(jobs / "j2")])
    with pytest.raises(StartRefused, match="not this account's own"):
        await jt.claim_dirs([str(jobs / "j2"), str(jobs / "j2" / "1")])
    assert not (jobs / "j2" / "1").exists()

    await jt.remove_tree(str(job))
    assert not job.exists()


async def test_sudo_refusing_names_the_account_and_the_sudoers_line() -> None:
    missing = f"jw-none-{secrets.token_hex(3)}"
    jt = SudoTransport(LocalTransport(), missing, login="jobwire")
    with pytest.raises(SudoRefused) as e:
        await jt.whoami()
    assert missing in str(e.value) and f"jobwire ALL=({missing}) NOPASSWD: ALL" in str(e.value)
