"""``jobwire-stack`` / ``make run``: the whole stack on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .processes import Interrupted, write_line

if TYPE_CHECKING:
    from .stack import StackConfig
    from .supervise import Policy


def token_path(env: os._Environ[str]) -> Path:
    """Where the ``jobwire`` CLI looks for its token (its ``config.token_path``, same rule)."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jobwire" / "token"


def parse(argv: list[str] | None) -> tuple[StackConfig, Policy]:
    env = os.environ
    p = argparse.ArgumentParser(prog="jobwire-stack", description=__doc__)
    p.add_argument(
        "--home", default=env.get("JOBWIRE_HOME", ".jobwire"), help="state directory (default .jobwire)"
    )
    p.add_argument("--port", type=int, default=int(env.get("JOBWIRE_GATEWAY_PORT", "8000")), help="API port")
    p.add_argument("--nats-port", type=int, default=int(env.get("JOBWIRE_NATS_PORT", "4222")))
    p.add_argument("--nats-monitor-port", type=int, default=int(env.get("JOBWIRE_NATS_MONITOR_PORT", "8222")))
    p.add_argument(
        "--database-url",
        default=env.get("JOBWIRE_DATABASE_URL"),
        help="postgresql+asyncpg://... (default: SQLite under --home)",
    )
    p.add_argument("--nodes", type=int, default=1, help="how many local executor nodes to run")
    p.add_argument("--slots", type=int, default=None, help="jobs at once per node (default: CPU count)")
    p.add_argument(
        "--token-file",
        default=str(token_path(env)),
        help="where the local admin token is kept for the CLI (default: ~/.config/jobwire/token)",
    )
    p.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        help="restarts in a row of a service that keeps exiting before the stack stops (default 5)",
    )
    p.add_argument(
        "--restart-backoff", type=float, default=1.0, help="first wait before a restart, doubled each time"
    )
    a = p.parse_args(argv)
    from .stack import ExecutorConfig, StackConfig
    from .supervise import Policy

    names = ["local"] if a.nodes == 1 else [f"local-{i + 1}" for i in range(a.nodes)]
    policy = Policy(max_restarts=a.max_restarts, first_backoff=a.restart_backoff)
    return StackConfig(
        home=Path(a.home),
        api_port=a.port,
        nats_port=a.nats_port,
        nats_monitor_port=a.nats_monitor_port,
        database_url=a.database_url,
        executors=[ExecutorConfig(node=n, slots=a.slots) for n in names],
        token_file=Path(a.token_file),
        parent_death_signal=signal.SIGTERM,
    ), policy


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequests:
    """Signal handler that only records: no lock, no I/O, so a signal arriving while the handler (or
    anything else) runs cannot deadlock the launcher; the main loop acts on what it recorded."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    @property
    def repeated(self) -> bool:
        """A second signal while stopping: kill what is still up instead of waiting."""
        return len(self.signals) > 1

    def install(self) -> None:
        # SIGINT is set explicitly: a shell starts background jobs with SIGINT ignored, and Python then
        # keeps it ignored, so `make run &` could not be stopped with kill -INT.
        for sig in STOP_SIGNALS:
            signal.signal(sig, self)


def main(argv: list[str] | None = None) -> None:
    # Handlers first: the imports below take seconds on a busy machine, and a SIGINT in that window
    # would be lost (ignored in a background job) or kill us half-started.
    stop = StopRequests()
    stop.install()
    from .stack import Stack
    from .supervise import GaveUp, Supervisor

    config, policy = parse(argv)
    echo = write_line(sys.stdout, threading.Lock(), colour=sys.stdout.isatty())
    stack = Stack(config, echo, cancelled=lambda: stop.requested)

    def say(message: str) -> None:
        print(f"jobwire-stack: {message}", file=sys.stderr, flush=True)

    supervisor = Supervisor(stack, say, policy)
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while not stop.requested:
            supervisor.check()
            time.sleep(0.1)
    except Interrupted:
        pass
    except (GaveUp, RuntimeError) as e:
        say(str(e))
        code = 1
    finally:
        reason = f" (signal {signal.Signals(stop.signals[0]).name})" if stop.signals else ""
        print(f"\nstopping jobwire{reason} ...", flush=True)
        stack.stop(hurry=lambda: stop.repeated)
        print("stopped.", flush=True)
        # Python puts the default handlers back while it exits: a late signal would kill us mid-way.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    sys.exit(code)


if __name__ == "__main__":
    main()
