"""The whole jobwire stack on one machine: NATS, the database, scheduler, executors and gateway.

Used by ``make run`` and by the end-to-end tests, which also kill and restart single services.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobwire.store.bootstrap import local_admin_token
from jobwire.store.engine import migrate

from .processes import Interrupted, NatsProcess, ServiceProcess

#: the owner of every job when the gateway runs with JOBWIRE_GATEWAY_AUTH=off (its anonymous admin)
ANONYMOUS = "anonymous"


@dataclass
class ExecutorConfig:
    node: str = "local"
    backend: str = "local"
    slots: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StackConfig:
    home: Path = Path(".jobwire")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    #: an already running NATS to use instead of starting one
    nats_url: str | None = None
    database_url: str | None = None
    executors: list[ExecutorConfig] = field(default_factory=lambda: [ExecutorConfig()])
    env: dict[str, str] = field(default_factory=dict)
    #: where the local admin token is kept (0600) for the CLI; default ``<home>/token``
    token_file: Path | None = None
    #: who that token belongs to; default the local user
    owner: str | None = None
    #: signal every service gets when the thread that started it dies (``make run`` uses SIGTERM so a
    #: killed launcher leaves no orphan); None for tests and embedders that start services from threads
    parent_death_signal: int | None = None

    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.home / 'jobwire.db').resolve()}"


class Stack:
    def __init__(
        self,
        config: StackConfig,
        echo: Callable[[str, str], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        """``cancelled`` is polled while starting: when it turns true, ``start`` raises ``Interrupted``."""
        self.config = config
        self.echo = echo
        self.cancelled = cancelled
        self.home = config.home.resolve()
        self.nats: NatsProcess | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.token_file = (config.token_file or self.home / "token").expanduser()
        #: the local admin token (set by ``start``), and whether ``start`` created it
        self.token: str | None = None
        self.token_created = False

    @property
    def nats_url(self) -> str:
        if self.config.nats_url:
            return self.config.nats_url
        assert self.nats is not None
        return self.nats.url

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api_host}:{self.config.api_port}"

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "JOBWIRE_NATS_URL": self.nats_url,
                "JOBWIRE_DATABASE_URL": self.config.db_url(),
            }
        )
        env.update(self.config.env)
        return env

    def make(self, name: str) -> ServiceProcess:
        """The process for service ``name`` (``scheduler``, ``gateway`` or ``executor-<node>``)."""
        env = self.base_env()
        py = sys.executable
        if name == "scheduler":
            env["JOBWIRE_SCHEDULER_MIGRATE"] = "false"
            argv = [py, "-m", "jobwire.scheduler"]
        elif name == "gateway":
            env["JOBWIRE_GATEWAY_HOST"] = self.config.api_host
            env["JOBWIRE_GATEWAY_PORT"] = str(self.config.api_port)
            argv = [py, "-m", "jobwire.gateway"]
        elif name.startswith("executor-"):
            ex = next(e for e in self.config.executors if f"executor-{e.node}" == name)
            env["JOBWIRE_EXECUTOR_BACKEND"] = ex.backend
            env["JOBWIRE_EXECUTOR_NODE"] = ex.node
            env["JOBWIRE_EXECUTOR_ROOT"] = str(self.home / "executors" / ex.node)
            if ex.slots is not None:
                env["JOBWIRE_EXECUTOR_SLOTS"] = str(ex.slots)
            if ex.labels:
                env["JOBWIRE_EXECUTOR_LABELS"] = ",".join(f"{k}={v}" for k, v in ex.labels.items())
            env.update(ex.env)
            if env.get("JOBWIRE_EXECUTOR_RUN_AS", "self").strip() == "self":
                # jobs run as the stack's own account: they serve the owner of its token only
                # (issue 12; with the gateway's auth off every caller is that one anonymous owner);
                # another owner's job is refused with the reason
                auth_off = env.get("JOBWIRE_GATEWAY_AUTH", "").strip().lower() == "off"
                env.setdefault("JOBWIRE_EXECUTOR_OWNER", ANONYMOUS if auth_off else self.owner)
            argv = [py, "-m", "jobwire.execution"]
        else:
            raise ValueError(f"unknown service {name!r}")
        log = self.home / "logs" / f"{name}.log"
        return ServiceProcess(name, argv, env, log, self.echo, self.config.parent_death_signal)

    @property
    def owner(self) -> str:
        """Who the local admin token belongs to: the one owner a ``self`` executor of this stack serves."""
        return self.config.owner or getpass.getuser()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.config.nats_url:
            self.nats = NatsProcess(
                self.home,
                self.config.nats_port,
                self.config.nats_monitor_port,
                self.echo,
                self.config.parent_death_signal,
            )
            self.nats.start(cancelled=self.cancelled)
        asyncio.run(migrate(self.config.db_url()))
        # The gateway refuses to start without a credential source: the local user gets an admin token.
        self.token, self.token_created = local_admin_token(self.config.db_url(), self.owner, self.token_file)
        self.start_service("scheduler")
        for ex in self.config.executors:
            self.start_service(f"executor-{ex.node}")
        self.start_service("gateway")
        self.wait_ready()

    def start_service(self, name: str) -> ServiceProcess:
        proc = self.make(name)
        proc.start()
        self.services[name] = proc
        return proc

    def restart(self, name: str) -> ServiceProcess:
        old = self.services.get(name)
        if old is not None:
            old.stop()
        return self.start_service(name)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.cancelled():
                raise Interrupted("stop requested while the stack was starting")
            dead = [n for n, p in self.services.items() if not p.alive()]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during start; see {self.home / 'logs'}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/ready", timeout=2) as resp:  # noqa: S310 - our URL
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"the gateway was not ready after {timeout:.0f}s ({last})")

    def dead(self) -> list[str]:
        names = [n for n, p in self.services.items() if not p.alive()]
        if self.nats is not None and not self.nats.process.alive():
            names.append("nats")
        return names

    def stop(self, timeout: float = 15.0, hurry: Callable[[], bool] = lambda: False) -> None:
        """SIGTERM to every service at once, SIGKILL to those still up after ``timeout`` (or when
        ``hurry()`` turns true); NATS last so services can finish what they publish."""
        for name in reversed(list(self.services)):
            self.services[name].signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in reversed(list(self.services)):
            self.services[name].wait_stopped(deadline, hurry)
        if self.nats is not None:
            self.nats.process.signal(signal.SIGTERM)
            self.nats.process.wait_stopped(time.monotonic() + timeout, hurry)

    def banner(self) -> str:
        monitor = f"http://127.0.0.1:{self.config.nats_monitor_port}" if self.nats else "(external)"
        nodes = ", ".join(e.node for e in self.config.executors)
        return "\n".join(
            [
                "",
                "jobwire is up",
                f"  API        {self.api_url}/v1/jobs",
                f"  API docs   {self.api_url}/schema",
                f"  NATS       {self.nats_url}   (monitoring {monitor})",
                f"  database   {self.config.db_url()}",
                f"  executors  {nodes}",
                f"  logs       {self.home / 'logs'}",
                f"  token      {self.token_file}  (admin, {'new' if self.token_created else 'kept'}; "
                "the CLI reads it)",
                f"             {self.token}",
                "",
                "try:",
                f"  curl -s -X POST {self.api_url}/v1/jobs -H 'content-type: application/json' \\",
                f'       -H "Authorization: Bearer $(cat {self.token_file})" \\',
                "       -d '"
                + json.dumps(
                    {
                        "name": "hello",
                        "command": ["sh", "-c", "echo hi; sleep 1; echo done"],
                        "expected_runtime": 5,
                    }
                )
                + "'",
                "  jobwire ls            # then: jobwire logs -f <id>",
                "  nats sub 'jobwire.evt.>'   # every state change as JSON",
                "",
                "Ctrl-C stops everything.",
                "",
            ]
        )
