"""``LocalTransport.spawn_detached`` (``posix_spawn`` of a session leader): what a launched job gets from
the executor, and what it must not."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from jobwire.execution.local import LocalExecutor
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


async def test_many_launches_at_once_leave_no_zombie(tmp_path):
    """The detached processes are this executor's children now (no setsid -f in between): once they
    have ended, the next launch, probe or signal reaps them, so a burst leaves no defunct child."""
    await asyncio.gather(*(LocalTransport().spawn_detached(["/bin/true"]) for _ in range(40)))

    def defunct() -> list[str]:
        children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
        states = []
        for child in children:
            with contextlib.suppress(FileNotFoundError):
                states.append(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0])
        return [s for s in states if s == "Z"]

    deadline = time.monotonic() + 30
    while True:
        await LocalTransport().probe([str(tmp_path)])  # reaps what has ended
        if not defunct():
            break
        assert time.monotonic() < deadline, defunct()
        await asyncio.sleep(0.05)


async def test_the_end_of_a_detached_process_is_heard_at_once_and_reaped():
    """With ``on_exit`` set, the transport hears a detached process end through its pidfd (the run loop
    polls then, not a tick later) and reaps it there; one still running is not taken for ended."""
    ended: list[tuple[int, float]] = []
    transport = LocalTransport()
    transport.on_exit = lambda pid: ended.append((pid, time.monotonic()))
    began = time.monotonic()
    await transport.spawn_detached(["/bin/sh", "-c", "sleep 0.4"])
    [pid] = transport._watched.values()
    deadline = began + 20
    while not ended:
        assert time.monotonic() < deadline, "the end was never heard"
        await asyncio.sleep(0.01)
    assert ended[0][0] == pid
    assert ended[0][1] - began >= 0.35, "heard before the process ended"
    assert not Path(f"/proc/{pid}").exists(), "the ended process was left a zombie"
    assert transport._watched == {}


async def test_a_closed_transport_stops_watching_and_leaves_the_process_running():
    heard: list[int] = []
    transport = LocalTransport()
    transport.on_exit = heard.append
    await transport.spawn_detached(["/bin/sh", "-c", "sleep 30"])
    [pid] = transport._watched.values()
    await transport.close()
    try:
        assert transport._watched == {}
        os.kill(pid, 0)  # still there: a restarted executor adopts it
    finally:
        os.killpg(pid, 9)
    await asyncio.sleep(0.2)
    assert heard == []


@pytest.mark.parametrize("stale", ["file", "fifo", "dangling-link"])
def test_wrapper_replaces_pipes_a_dead_launch_left(tmp_path, stale):
    """A launch that died between mkfifo and removing the pipes' names leaves them; the next launch of
    the attempt replaces them (only then: the common launch runs no rm before its mkfifo) and runs
    the job."""
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


def _wrapper(tmp_path: Path, log_max: str, *job: str) -> subprocess.Popen[bytes]:
    """The attempt wrapper on ``job`` in a session of its own, as the executor starts it."""
    from jobwire.execution.attempt.layout import WRAPPER_SCRIPT

    (tmp_path / "wrapper.sh").write_text(WRAPPER_SCRIPT)
    (tmp_path / "work").mkdir(exist_ok=True)
    argv = ["/bin/sh", str(tmp_path / "wrapper.sh"), str(tmp_path), str(tmp_path / "work"), log_max, *job]
    return subprocess.Popen(argv, start_new_session=True)


async def _pid_of(d: Path) -> int:
    """The wrapper's pid once written whole (one write, read as the executor does: ended by a newline)."""
    deadline = time.monotonic() + 30
    while not _text(d / "pid").endswith("\n"):
        assert time.monotonic() < deadline, "the wrapper wrote no pid"
        await asyncio.sleep(0.001)
    return int(_text(d / "pid"))


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("log_max", ["0", "1000"])
async def test_a_term_sent_once_the_pid_is_out_reaches_the_job(tmp_path, log_max):
    """The executor signals the group as soon as the pid file is there (a cancel right after the start).
    The pid is written by the process that then becomes the job, its TERM back to the default: a TERM
    landing between the pid and the job's start ends the job instead of being caught by the wrapper
    and lost (the job ran on to the KILL, 137 instead of its own code: a flaky cancel test)."""
    for i in range(5):
        d = tmp_path / str(i)
        d.mkdir()
        proc = _wrapper(d, log_max, "sleep", "60")
        try:
            pid = await _pid_of(d)
            os.killpg(pid, 15)
            code = await _wait_for(d / "exit_code", timeout=30)
            assert code.strip() == "143", code
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


async def test_the_capped_log_follows_the_job_live(tmp_path):
    """Capped logs are written as the job writes, not when it ends (the capper's output unbuffered)."""
    proc = _wrapper(tmp_path, "100000", "sh", "-c", "echo first; echo oops >&2; sleep 60")
    try:
        await _pid_of(tmp_path)
        deadline = time.monotonic() + 30
        while _text(tmp_path / "stdout") != "first\n" or _text(tmp_path / "stderr") != "oops\n":
            assert time.monotonic() < deadline, "the logs did not show the job's lines while it ran"
            await asyncio.sleep(0.05)
        assert proc.poll() is None and not (tmp_path / "exit_code").exists()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    assert (tmp_path / "exit_code").read_text().strip() == "143"


async def test_the_wrapper_reads_the_pipes_the_executor_made(tmp_path):
    """Where the executor made the readers' pipes ahead (the local transport: no mkfifo and rm
    processes per job), the wrapper reads its logs through them and leaves their removal to it."""
    from jobwire.execution.attempt.layout import FIFOS

    made = await LocalTransport().make_fifos([str(tmp_path / n) for n in FIFOS])
    proc = _wrapper(tmp_path, "1000", "sh", "-c", "echo out; echo err >&2")
    assert made and proc.wait(timeout=60) == 0
    assert (_text(tmp_path / "stdout"), _text(tmp_path / "stderr")) == ("out\n", "err\n")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".pipe", ".fifo"))) == sorted(FIFOS)


def _autogroup_nice(pid: int) -> int | None:
    """The nice of ``pid``'s session autogroup; None without autogroups (no file), or for a process of
    the boot session, which never called setsid: it stays in the kernel's default group, for which the
    file is empty (the CI machine's test process, started under its PID 1's session)."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-123 nice 7"
    except OSError:
        return None
    return int(text.split()[-1]) if text.strip() else None


async def test_a_lowered_job_and_what_it_starts_run_at_its_nice(tmp_path):
    """The wrapper is lowered right after it is spawned; a child it starts inherits the value, and its
    session's autogroup (where the kernel has them) is lowered with it, so a job that keeps the cores
    busy yields to the control plane on the same machine."""
    script = tmp_path / "nice.sh"
    script.write_text(
        'sleep 0.3; echo "$$ $(ps -o ni= -p $$) $(sh -c \'ps -o ni= -p $$\')" > "$1/nice.tmp"\n'
        'mv "$1/nice.tmp" "$1/nice"; sleep 30\n'
    )
    ours = _autogroup_nice(os.getpid())
    await LocalTransport(job_nice=7).spawn_detached(["/bin/sh", str(script), str(tmp_path)], inherit=["PATH"])
    leader, own, child = (int(x) for x in (await _wait_for(tmp_path / "nice")).split())
    try:
        assert (own, child) == (7, 7)
        if Path(f"/proc/{leader}/autogroup").exists():  # the job led a new session: a group of its own
            assert _autogroup_nice(leader) == 7
        assert _autogroup_nice(os.getpid()) == ours, "the executor's own session keeps its priority"
    finally:
        os.killpg(leader, 9)


async def test_without_a_nice_the_job_runs_at_the_executors_priority(tmp_path):
    script = tmp_path / "nice.sh"
    script.write_text('echo "$(ps -o ni= -p $$)" > "$1/nice.tmp"; mv "$1/nice.tmp" "$1/nice"\n')
    await LocalTransport().spawn_detached(["/bin/sh", str(script), str(tmp_path)], inherit=["PATH"])
    assert int(await _wait_for(tmp_path / "nice")) == os.getpriority(os.PRIO_PROCESS, 0)


async def test_the_local_executor_runs_jobs_at_its_job_nice(harness):
    """``JOBWIRE_EXECUTOR_JOB_NICE``: 19 unless set; 0 leaves jobs at the executor's own priority."""
    show = {"command": ["sh", "-c", "ps -o ni= -p $$"]}
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    for kw, expected in (({}, 19), ({"job_nice": 0}, ours), ({"job_nice": 5}, 5)):
        svc = await harness.executor(**kw)
        job = await harness.run(svc.node, show)
        assert (await harness.wait(job, "finished", timeout=20)).exit_code == 0
        assert int(await harness.text(job, "stdout")) == expected, kw


def test_a_job_nice_outside_0_to_19_refuses_the_start(harness):
    for bad in (-1, 20):
        with pytest.raises(ValueError, match="JOB_NICE"):
            LocalExecutor(harness.settings(job_nice=bad))
