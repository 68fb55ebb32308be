"""What ``make run`` does when a service of the stack exits on its own: restart it with backoff, or stop.

A service that keeps dying right after each restart is not restarted forever: after ``max_restarts``
quick failures in a row the stack stops with the reason, instead of running half-alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .processes import ServiceProcess
from .stack import Stack


class GaveUp(RuntimeError):
    """A service failed more often in a row than the policy allows; the message says which and why."""


@dataclass
class Policy:
    #: restarts in a row before giving up (a service that ran ``stable_after`` seconds starts afresh)
    max_restarts: int = 5
    first_backoff: float = 1.0
    max_backoff: float = 30.0
    stable_after: float = 60.0

    def backoff(self, failures: int) -> float:
        return float(min(self.max_backoff, self.first_backoff * 2 ** max(0, failures - 1)))


@dataclass
class _Pending:
    due: float
    failures: int


@dataclass
class Supervisor:
    """Called from the launcher's main thread (services die with the thread that started them)."""

    stack: Stack
    say: Callable[[str], None]
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], float] = time.monotonic
    failures: dict[str, int] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)

    def check(self) -> None:
        """Notice services that exited and restart those whose backoff is over; raise ``GaveUp``."""
        now = self.clock()
        for name, proc in self._processes().items():
            if proc.alive():
                if now - proc.started_at >= self.policy.stable_after:
                    self.failures.pop(name, None)
                continue
            if name in self.pending:
                continue
            failures = self.failures.get(name, 0) + 1
            self.failures[name] = failures
            status = describe_exit(proc.returncode)
            log = proc.log_path
            if failures > self.policy.max_restarts:
                raise GaveUp(
                    f"{name} {status} {failures} times in a row (last restart "
                    f"{now - proc.started_at:.1f}s earlier); stopping. See {log}"
                )
            wait = self.policy.backoff(failures)
            self.say(
                f"{name} {status}; restarting it in {wait:.0f}s "
                f"(restart {failures} of {self.policy.max_restarts}). See {log}"
            )
            self.pending[name] = _Pending(now + wait, failures)
        for name, due in list(self.pending.items()):
            if now >= due.due:
                del self.pending[name]
                self._restart(name)
                self.say(f"{name} restarted (pid {self._processes()[name].pid})")

    def _processes(self) -> dict[str, ServiceProcess]:
        procs = dict(self.stack.services)
        if self.stack.nats is not None:
            procs["nats"] = self.stack.nats.process
        return procs

    def _restart(self, name: str) -> None:
        if name == "nats":
            assert self.stack.nats is not None
            self.stack.nats.start()
        else:
            self.stack.start_service(name)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with status {code}"
