"""``LocalTransport.spawn_detached`` (``setsid -f`` by ``posix_spawn``): what a launched job gets from
the executor, and what it must not."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import pytest

from jobwire.execution.transport.local import LocalTransport

pytestmark = pytest.mark.integration

#: records its pid, session, process group, open descriptors and one variable, then waits to be stopped
PROBE = r"""
echo "$$ $(ps -o sid= -p $$) $(ps -o pgid= -p $$)" > "$1/ids"
for fd in /proc/$$/fd/*; do readlink "$fd"; done > "$1/fds"
echo "${KEPT-unset} ${DROPPED-unset}" > "$1/env"
echo done > "$1/ready"
sleep 30
"""


async def _wait_for(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)
    return path.read_text()


async def test_detached_job_leads_its_own_session_with_only_stdio_open(tmp_path, monkeypatch):
    monkeypatch.setenv("KEPT", "yes")
    monkeypatch.setenv("DROPPED", "leak")
    script = tmp_path / "probe.sh"
    script.write_text(PROBE)
    # descriptors the executor holds (a file, a socket pair) must not reach the job
    held = open(tmp_path / "held", "w")  # noqa: SIM115 - kept open across the launch on purpose
    a, b = __import__("socket").socketpair()
    try:
        await LocalTransport().spawn_detached(
            ["/bin/sh", str(script), str(tmp_path)], env={"EXTRA": "1"}, inherit=["PATH", "KEPT"]
        )
        await _wait_for(tmp_path / "ready")
    finally:
        held.close()
        a.close()
        b.close()
    pid, sid, pgid = (int(x) for x in (tmp_path / "ids").read_text().split())
    try:
        assert sid == pid and pgid == pid, "the job leads a session and process group of its own"
        assert sid != os.getsid(0)
        # the shell's own (its script, the file it writes, /dev/null...), nothing of the executor's
        fds = (tmp_path / "fds").read_text().split()
        assert not [f for f in fds if f.startswith("socket:") or f.endswith("/held")], fds
        assert (tmp_path / "env").read_text().split() == ["yes", "unset"]
    finally:
        os.killpg(pgid, 9)


async def test_a_command_line_too_long_is_an_e2big_oserror(tmp_path):
    huge = "x" * (os.sysconf("SC_ARG_MAX") + 1)
    with pytest.raises(OSError, match="too long") as caught:
        await LocalTransport().spawn_detached(["/bin/true", huge])
    assert caught.value.errno == errno.E2BIG


async def test_many_launches_at_once_leave_no_zombie_setsid(tmp_path):
    """Each setsid is reaped: a burst of launches leaves no defunct child of the executor."""
    await asyncio.gather(*(LocalTransport().spawn_detached(["/bin/true"]) for _ in range(40)))
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    states = []
    for child in children:
        stat = Path(f"/proc/{child}/stat")
        if stat.exists():
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
    assert "Z" not in states, children


@pytest.mark.parametrize("stale", ["file", "fifo", "dangling-link"])
def test_wrapper_replaces_pipes_a_dead_launch_left(tmp_path, stale):
    """A launch that died between mkfifo and its pid leaves the pipes' names; the next launch of the
    attempt removes them (only then: the common launch runs no rm before its pid) and runs the job."""
    import subprocess

    from jobwire.execution.attempt.layout import WRAPPER_SCRIPT

    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(WRAPPER_SCRIPT)
    left = tmp_path / "stdout.pipe"
    if stale == "file":
        left.write_text("old")
    elif stale == "fifo":
        os.mkfifo(left)
    else:
        left.symlink_to(tmp_path / "nowhere")
    done = subprocess.run(
        ["/bin/sh", str(wrapper), str(tmp_path), str(tmp_path), "1000", "echo", "hi"], timeout=30, check=False
    )
    assert done.returncode == 0
    assert (tmp_path / "exit_code").read_text().strip() == "0"
    assert (tmp_path / "stdout").read_text() == "hi\n"
    assert (tmp_path / "pid").read_text().strip().isdigit()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".pipe")]
