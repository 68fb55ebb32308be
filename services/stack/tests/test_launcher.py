"""``jobwire-stack`` (``make run``) as a process: how it stops, and what it does when a service dies.

Every test runs the real launcher (``python -m jobwire.stack``) with nats-server, scheduler, a local
executor and the gateway on free ports, and checks what a user would see: the command returns, no
process of the stack is left, the ports are free, a lost service comes back or the stack says why not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jobwire.stack.processes import free_port, port_in_use

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]

FAST = {
    "JOBWIRE_SCHEDULER_TICK": "0.2",
    "JOBWIRE_EXECUTOR_HEARTBEAT_INTERVAL": "0.5",
    "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.1",
}


def wait_for(pred: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children(pid: int) -> dict[int, str]:
    """pid -> command line of the direct children of ``pid`` (from /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Launcher:
    home: Path
    api_port: int
    nats_port: int
    monitor_port: int
    proc: subprocess.Popen[bytes]
    pid: int
    out: Path
    err: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def services(self) -> dict[int, str]:
        return children(self.pid)

    def service_pid(self, module: str) -> int:
        pids = [p for p, cmd in self.services().items() if f"-m {module}" in cmd]
        assert len(pids) == 1, self.services()
        return pids[0]

    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def assert_all_gone(self, pids: list[int], timeout: float = 30.0) -> None:
        wait_for(lambda: not any(running(p) for p in pids), timeout, f"services {pids} to exit")
        for port in (self.api_port, self.nats_port):
            wait_for(lambda port=port: not port_in_use(port), 10, f"port {port} to be free")


def uv() -> str:
    """The uv running these tests (uv sets ``UV`` for what it runs), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is needed to start the stack as make run does"
    return found


def start_launcher(
    tmp: Path, *extra: str, background_shell: bool = False, up: bool = True, via_uv: bool = False
) -> Launcher:
    """The launcher up until its banner; ``background_shell`` starts it as ``cmd &`` from a
    non-interactive bash, which is how a script starts ``make run`` (SIGINT then starts ignored);
    ``via_uv`` as ``make run`` does, ``uv run jobwire-stack`` in a process group of its own."""
    home = tmp / "home"
    tmp.mkdir(parents=True, exist_ok=True)
    ports = free_port(), free_port(), free_port()
    command = (
        [uv(), "run", "--frozen", "jobwire-stack"] if via_uv else [sys.executable, "-m", "jobwire.stack"]
    )
    argv = [*command, "--home", str(home), "--port", str(ports[0])]
    argv += ["--nats-port", str(ports[1]), "--nats-monitor-port", str(ports[2])]
    argv += ["--token-file", str(home / "token"), "--slots", "2", *extra]
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    env = {**os.environ, **FAST}
    with open(out, "wb") as o, open(err, "wb") as e:
        if background_shell:
            pidfile = tmp / "launcher.pid"
            script = '"$@" & echo "$!" > "$PIDFILE"; wait'
            proc = subprocess.Popen(
                ["bash", "-c", script, "bash", *argv],
                stdout=o,
                stderr=e,
                env={**env, "PIDFILE": str(pidfile)},
            )
            wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "the launcher's pid")
            pid = int(pidfile.read_text())
        else:
            proc = subprocess.Popen(argv, stdout=o, stderr=e, env=env, start_new_session=True, cwd=ROOT)
            pid = proc.pid
            if via_uv:  # the launcher is uv's child
                pid = int(wait_for(lambda: next(iter(children(proc.pid)), 0), 60, "uv to start the launcher"))
    launcher = Launcher(home, *ports, proc=proc, pid=pid, out=out, err=err)
    if not up:
        return launcher
    try:
        wait_for(lambda: "jobwire is up" in launcher.output() or not running(pid), 120, "the banner")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        raise
    assert running(pid), launcher.output()
    return launcher


@pytest.fixture
def launchers() -> Iterator[list[Launcher]]:
    """Kills what a failed test left behind (the launcher, then its services)."""
    started: list[Launcher] = []
    yield started
    for launcher in started:
        left = list(launcher.services())
        for pid in [launcher.pid, *left]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def wait_exit(launcher: Launcher, timeout: float) -> int:
    if launcher.proc.pid == launcher.pid:
        return launcher.proc.wait(timeout)
    wait_for(lambda: not running(launcher.pid), timeout, "the launcher to exit")
    return launcher.proc.wait(5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["INT", "HUP"])
def test_int_or_hup_stops_a_stack_started_in_the_background(
    tmp_path: Path, launchers: list[Launcher], sig: signal.Signals
) -> None:
    """``make run &`` from a script starts with SIGINT ignored; HUP is a closed terminal."""
    launcher = start_launcher(tmp_path, background_shell=True)
    launchers.append(launcher)
    services = list(launcher.services())
    assert len(services) == 4, launcher.services()  # nats, scheduler, executor, gateway

    os.kill(launcher.pid, sig)

    wait_exit(launcher, 30)
    launcher.assert_all_gone(services)
    assert f"stopping jobwire (signal {sig.name})" in launcher.output()
    assert "stopped." in launcher.output()


def test_int_while_starting_stops_what_was_started(tmp_path: Path, launchers: list[Launcher]) -> None:
    launcher = start_launcher(tmp_path, background_shell=True, up=False)
    launchers.append(launcher)
    wait_for(lambda: port_in_use(launcher.nats_port), 60, "nats-server, the first service, to listen")
    started = list(launcher.services())

    os.kill(launcher.pid, signal.SIGINT)

    wait_exit(launcher, 30)
    launcher.assert_all_gone([*started, *launcher.services()])
    assert "jobwire is up" not in launcher.output()
    assert "stopped." in launcher.output()


def test_a_storm_of_sigterm_stops_promptly_and_completely(tmp_path: Path, launchers: list[Launcher]) -> None:
    """Signals arriving while the handler runs (``kill -TERM -PGID`` reaches the launcher through make and
    uv as well) used to deadlock it on a lock; hundreds of them now only stop it once."""
    launcher = start_launcher(tmp_path)
    launchers.append(launcher)
    services = list(launcher.services())
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 2.0 and running(launcher.pid):
        os.kill(launcher.pid, signal.SIGTERM)
        sent += 1
        time.sleep(0.001)

    assert wait_exit(launcher, 30) == 0
    took = time.monotonic() - started
    launcher.assert_all_gone(services)
    assert sent > 50
    assert took < 30
    assert launcher.output().count("stopping jobwire") == 1


def test_term_to_the_process_group_of_uv_run_stops_it_every_time(
    tmp_path: Path, launchers: list[Launcher]
) -> None:
    """``kill -TERM -PGID`` of ``make run``: the launcher gets TERM twice (directly and forwarded by uv),
    the case that deadlocked 2 times in 18 before; three rounds, each must stop completely."""
    for round in range(3):
        launcher = start_launcher(tmp_path / f"round-{round}", via_uv=True)
        launchers.append(launcher)
        services = list(launcher.services())
        assert len(services) == 4, launcher.services()

        os.killpg(launcher.proc.pid, signal.SIGTERM)

        launcher.proc.wait(30)
        wait_for(lambda launcher=launcher: not running(launcher.pid), 30, "the launcher to exit")
        launcher.assert_all_gone(services)
        assert "stopped." in launcher.output()


def test_a_killed_launcher_leaves_no_service_behind(tmp_path: Path, launchers: list[Launcher]) -> None:
    launcher = start_launcher(tmp_path)
    launchers.append(launcher)
    services = list(launcher.services())
    assert len(services) == 4

    os.kill(launcher.pid, signal.SIGKILL)
    launcher.proc.wait(10)

    launcher.assert_all_gone(services, timeout=30)


def test_a_killed_service_is_restarted_then_the_stack_gives_up(
    tmp_path: Path, launchers: list[Launcher]
) -> None:
    launcher = start_launcher(tmp_path, "--max-restarts", "1", "--restart-backoff", "0.5")
    launchers.append(launcher)
    nats = next(p for p, cmd in launcher.services().items() if "nats-server" in cmd)
    os.kill(nats, signal.SIGKILL)  # the bus itself: restarted on the same port and store
    wait_for(lambda: "nats restarted" in launcher.output(), 30, "the restart of nats-server")
    assert "nats was killed by signal 9; restarting it" in launcher.output()
    first = launcher.service_pid("jobwire.scheduler")

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: "scheduler restarted" in launcher.output(), 30, "the scheduler's restart")
    assert "scheduler was killed by signal 9; restarting it" in launcher.output()
    second = launcher.service_pid("jobwire.scheduler")
    assert second != first

    # the restarted scheduler, on the restarted bus, really serves: a job submitted now runs to the end
    headers = {"Authorization": f"Bearer {launcher.token()}"}
    with httpx.Client(base_url=launcher.api_url, headers=headers, timeout=30) as api:
        r = api.post("/v1/jobs", json={"command": ["sh", "-c", "echo hi"], "expected_runtime": 5})
        assert r.status_code in (201, 202), r.text
        job = r.json()["id"]
        # a 202 (the new scheduler has not confirmed it yet) is readable once the scheduler stored it
        state = lambda: api.get(f"/v1/jobs/{job}").json().get("state")  # noqa: E731
        wait_for(lambda: state() == "succeeded", 60, "the job to succeed")

    services = list(launcher.services())
    os.kill(second, signal.SIGKILL)  # the second failure in a row: more than --max-restarts 1

    assert wait_exit(launcher, 30) == 1
    launcher.assert_all_gone(services)
    assert "scheduler was killed by signal 9 2 times in a row" in launcher.output()
