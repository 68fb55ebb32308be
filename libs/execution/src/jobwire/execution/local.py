"""``LocalExecutor``: detached processes on this machine (entry point ``jobwire.executors: local``).

Under run-as (``fixed:<user>``, ``owner``) the job's directory is given to its account and the job is
started through ``setpriv`` by the wrapper, which stays the executor's: the job cannot write the
exit code, the pid or the logs, nor enter another attempt's directory (issue 12 item 1).
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import ClassVar

from jobwire.contracts.v1 import NodeCapacity, RunJob, parse_size

from .executor import RunHandle
from .runner import ProcessExecutor, prepare_wrapped
from .runner.executor import setpriv_argv
from .settings import ExecutorSettings
from .transport.local import LocalTransport


def memory_total(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of RAM this machine has (None where /proc/meminfo is missing)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_traversable(root: str) -> None:
    """``root`` and every existing directory above it must let other accounts pass (``o+x``), or no
    job of a mapped account could reach its own directory: refuse the start with the one that does not."""
    path = os.path.abspath(root)
    while True:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = stat.S_IXOTH
        if not mode & stat.S_IXOTH:
            raise ValueError(
                f"the jobs' accounts cannot pass through {path} (mode {stat.S_IMODE(mode):o}) to reach "
                f"the executor's root {root}: give it o+x or choose a root they can reach"
            )
        if path == "/":
            return
        path = os.path.dirname(path)


class LocalExecutor(ProcessExecutor):
    """The runner over LocalTransport; capacity defaults to what this machine has."""

    backend = "local"
    run_as_modes: ClassVar[frozenset[str]] = frozenset({"self", "fixed", "owner"})

    def __init__(self, settings: ExecutorSettings) -> None:
        if not 0 <= settings.job_nice <= 19:
            raise ValueError(f"JOBWIRE_EXECUTOR_JOB_NICE={settings.job_nice}: a nice value from 0 to 19")
        super().__init__(
            settings, LocalTransport(job_nice=settings.job_nice), os.path.abspath(settings.root_dir())
        )
        if not self.run_as.is_self and os.geteuid() != 0:
            raise ValueError(
                f"JOBWIRE_EXECUTOR_RUN_AS={settings.run_as!r} needs the executor to run as root "
                "(it gives each job's directory to its account and starts the job as that account)"
            )
        if not self.run_as.is_self:
            check_traversable(self.root)
        cpus = os.cpu_count() or 1
        self._capacity = NodeCapacity(
            slots=settings.slots or cpus,
            cpus=settings.cpus or float(cpus),
            memory=parse_size(settings.memory) if settings.memory else memory_total(),
            gpus=settings.gpus or 0,
            address=settings.address or "127.0.0.1",
        )

    def capacity(self) -> NodeCapacity:
        return self._capacity

    async def start(self, run: RunJob) -> RunHandle:
        account = await self.run_as.ensure(run.owner)
        if account is None:
            return await super().start(run)
        drop = setpriv_argv(account, shutil.which("setpriv") or "/usr/bin/setpriv")
        return await self.launch(await prepare_wrapped(self, run, account, drop), run)
