"""``jobwire-stack`` / ``make run``: the whole stack on this machine until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .processes import write_line
from .stack import ExecutorConfig, Stack, StackConfig


def token_path(env: os._Environ[str]) -> Path:
    """Where the ``jobwire`` CLI looks for its token (its ``config.token_path``, same rule)."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jobwire" / "token"


def parse(argv: list[str] | None) -> StackConfig:
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
    a = p.parse_args(argv)
    names = ["local"] if a.nodes == 1 else [f"local-{i + 1}" for i in range(a.nodes)]
    return StackConfig(
        home=Path(a.home),
        api_port=a.port,
        nats_port=a.nats_port,
        nats_monitor_port=a.nats_monitor_port,
        database_url=a.database_url,
        executors=[ExecutorConfig(node=n, slots=a.slots) for n in names],
        token_file=Path(a.token_file),
    )


def main(argv: list[str] | None = None) -> None:
    config = parse(argv)
    echo = write_line(sys.stdout, threading.Lock(), colour=sys.stdout.isatty())
    stack = Stack(config, echo)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while not stopping.is_set():
            dead = stack.dead()
            if dead:
                print(
                    f"\n{', '.join(dead)} stopped unexpectedly; see {stack.home / 'logs'}. Shutting down.",
                    file=sys.stderr,
                )
                code = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(f"jobwire-stack: {e}", file=sys.stderr)
        code = 1
    finally:
        print("\nstopping jobwire ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
