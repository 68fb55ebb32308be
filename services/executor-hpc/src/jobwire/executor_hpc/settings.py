"""Settings of one HPC executor (one cluster), read from ``JOBWIRE_HPC_*``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from jobwire.runtime.settings import from_env

ENV_PREFIX = "JOBWIRE_HPC_"


@dataclasses.dataclass(kw_only=True)
class HpcSettings:
    #: adapter name in ``jobwire.hpc_schedulers``: slurm, sge, torque (pbs)
    scheduler: str = "slurm"
    #: ``local`` (the executor runs on the login node) or ``ssh``
    transport: str = "local"
    #: the cluster name jobs ask for with ``cluster``; default: the node name
    cluster: str | None = None
    #: where the scheduler's binaries are (SGE: /usr/lib/gridengine skips Debian's slow wrappers)
    bin_dir: str | None = None
    #: default partition / queue when the job names none
    queue: str | None = None
    #: seconds between two list commands at least (all jobs in one call)
    poll_interval: float = 1.0
    #: longest wait between list commands after errors (doubling backoff)
    max_backoff: float = 30.0
    #: where accounting records a job's end at once (SGE): seconds between two accounting calls at
    #: least, asked for the jobs whose wrapper has written its exit code (one call for all of them)
    #: without waiting for the next list call to show them gone
    accounting_interval: float = 0.25
    #: seconds a job that left the queue may wait for its accounting record before it is ended anyway
    accounting_wait: float = 30.0
    #: for ``ssh``: the login node (``user@host:port``), optional jump host, key file
    ssh_host: str | None = None
    ssh_jump: str | None = None
    ssh_key: str | None = None
    ssh_known_hosts: str | None = None
    #: programs jobs may name (``program: NAME@VERSION``): a TOML or JSON file of configured entries
    #: (read here), and a directory of ``NAME/VERSION/run`` entry scripts on the cluster, rescanned
    #: every ``programs_interval`` seconds
    programs_file: str | None = None
    programs_root: str | None = None
    programs_interval: float = 300.0
    #: shared storage as the gateway and users see it = as the cluster sees it, comma-separated
    #: (``/gateway/view=/cluster/view``): job paths under the first are rewritten to the second
    path_map: dict[str, str] = dataclasses.field(default_factory=dict)
    #: environment for every scheduler command (``SLURM_CONF=/etc/slurm/slurm.conf,SGE_ROOT=...``),
    #: needed over SSH where the login node's shell profile is not read
    command_env: dict[str, str] = dataclasses.field(default_factory=dict)
    #: ``slurm-rest``: slurmrestd URL, user, JWT (a file, re-read on every call, or the value itself),
    #: optional SOCKS5 proxy (``host:port``) and API version (detected when unset)
    rest_url: str | None = None
    rest_user: str | None = None
    rest_token_file: str | None = None
    rest_token: str | None = dataclasses.field(default=None, repr=False)
    rest_proxy: str | None = None
    rest_version: str | None = None
    #: ``sge``: the parallel environment a job of more than one slot gets when it names none
    #: (``smp``); without one such jobs must set ``sge.parallel_environment`` (422 at submit)
    parallel_environment: str | None = None
    #: ``torque``/``pbs``: the full-status format qstat is asked for, ``xml`` (``qstat -x``, Torque's
    #: XML; the default for ``torque``) or ``text`` (``qstat -f``; the default for ``pbs``)
    qstat_format: str | None = None
    #: an array's tasks dispatched together become one native array job (``sbatch --array``,
    #: ``qsub -t``) where the adapter has them; off: each task is a batch job of its own
    native_arrays: bool = True

    def scheduler_options(self) -> dict[str, str]:
        """What the adapter reads from ``options`` (only the set ones)."""
        named = {
            "url": self.rest_url,
            "user": self.rest_user,
            "token_file": self.rest_token_file,
            "token": self.rest_token,
            "proxy": self.rest_proxy,
            "version": self.rest_version,
            "qstat_format": self.qstat_format,
        }
        return {k: v for k, v in named.items() if v}


def hpc_settings(environ: Mapping[str, str] | None = None) -> HpcSettings:
    return from_env(HpcSettings, ENV_PREFIX, environ)
