"""Executor settings, read from ``JOBWIRE_EXECUTOR_*`` with CLI flags on top."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from jobwire.runtime.settings import LOG_MAX_BYTES_PER_JOB, from_env

from .accounts import RunAs

ENV_PREFIX = "JOBWIRE_EXECUTOR_"


def default_node_name(hostname: str | None = None) -> str:
    """This host's short name made into one subject token (``gpu01.lab.org`` → ``gpu01``)."""
    host = (hostname or socket.gethostname()).split(".", 1)[0]
    token = re.sub(r"[^A-Za-z0-9_-]+", "-", host).strip("-")[:128]
    return token or "node"


@dataclasses.dataclass(kw_only=True)
class ExecutorSettings:
    """What every executor needs; a backend may read more of its own from the environment."""

    backend: str = "local"
    node: str = dataclasses.field(default_factory=default_node_name)
    #: where attempt directories live; default ``./.jobwire/executor/<node>``
    root: str | None = None
    slots: int | None = None
    cpus: float | None = None
    #: bytes or "64G"
    memory: str | None = None
    gpus: int | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    pool: str | None = None
    #: where the ranks of a gang job on other nodes reach this node's jobs (its rank 0 listens there);
    #: the local executor's default is 127.0.0.1, right while every node of a gang is on one machine
    address: str | None = None
    heartbeat_interval: float = 2.0
    tick_interval: float = 0.25
    #: total bytes of outputs uploaded per attempt; files past it are skipped (and logged)
    artifact_max_bytes: int = 1024 * 1024 * 1024
    #: bytes of each log stream (stdout, stderr) kept on disk per attempt, then one marker line and the
    #: rest dropped while the job runs on; the default is the bus's per-job log cap; 0: no cap
    log_max_bytes: int = LOG_MAX_BYTES_PER_JOB
    #: the directories below which a job may name an absolute ``workdir`` (comma-separated); none by
    #: default: a job runs in its attempt's directory or below it, and an absolute workdir is refused
    workdir_roots: list[str] = dataclasses.field(default_factory=list)
    #: seconds between TERM and KILL when the executor enforces a timeout
    kill_grace: float = 10.0
    #: seconds to wait for a launched job's wrapper to record its pid
    launch_timeout: float = 10.0
    #: the CPU priority jobs of the local executor run at (a nice value, 0-19; 0: the executor's own).
    #: The lowest by default, as background work: where the gateway, scheduler and bus share the
    #: machine with the jobs (``make run``), jobs that keep every core busy leave the API and the
    #: executor their turn first; with nothing else wanting the CPU a job runs as fast as at 0
    job_nice: int = 19
    #: how many work messages one fetch takes
    fetch_batch: int = 16
    #: create or update the jobwire streams and buckets on start
    declare: bool = True
    #: what a job may take from the environment it is launched from (``NAME`` or ``PREFIX*``);
    #: everything else of the executor's environment never reaches it
    env_allow: list[str] = dataclasses.field(
        default_factory=lambda: ["PATH", "HOME", "LANG", "LC_*", "TZ", "USER", "LOGNAME", "TMPDIR"]
    )

    #: which OS account a job runs as: ``self`` (the executor's own), ``fixed:<user>`` or ``owner``
    #: (one account per owner); see :mod:`jobwire.execution.accounts`
    run_as: str = "self"
    #: the one owner whose jobs this executor runs (``self`` shares the executor's account, its
    #: files and every other job's with the job): another owner's job is refused; None with ``self``:
    #: the first owner whose job arrives, kept in the root directory
    owner: str | None = None
    #: ``owner: account`` lines for ``run_as=owner``
    accounts_file: str | None = None
    #: the naming rule for ``run_as=owner`` (prefix + the owner's name made a user name); None:
    #: ``jw-`` without a mapping file, no rule with one
    account_prefix: str | None = None
    #: create a missing mapped account with ``useradd`` (no login shell, home below accounts_home)
    create_accounts: bool = False
    accounts_home: str = "/var/lib/jobwire/home"
    #: let a job run as uid 0 (a mapping to root, or ``fixed:root``)
    allow_root: bool = False

    def run_as_policy(self) -> RunAs:
        """``run_as`` and the account settings parsed; ValueError refuses the executor's start."""
        return RunAs.parse(
            self.run_as,
            accounts_file=self.accounts_file,
            prefix=self.account_prefix,
            create=self.create_accounts,
            home_base=self.accounts_home,
            allow_root=self.allow_root,
        )

    def root_dir(self) -> str:
        return self.root or os.path.join(".jobwire", "executor", self.node)


def executor_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> ExecutorSettings:
    """Settings from the environment (``JOBWIRE_EXECUTOR_NODE`` ...), then non-None ``overrides``."""
    return from_env(ExecutorSettings, ENV_PREFIX, environ, **overrides)
