"""``SshExecutor``: the detached process runner over SSH, with one GPU slot per job.

Everything about running, logs, cancel and re-adoption is the shared runner's; this adds the
connection, the node's capacity, the GPU inventory with the heartbeat, GPU assignment
(``CUDA_VISIBLE_DEVICES``) and "down" after failed probes.

Run-as (``JOBWIRE_EXECUTOR_RUN_AS=owner|fixed:<user>``, issue 12): the login account plays the part
root plays locally. It keeps the attempt's own files (``<root>/.executor``, 0700) and runs the
wrapper; the job starts as its mapped account through ``sudo -n -u`` (:mod:`jobwire.execution.runner.sudo`),
and the job's directory is made, written and read as that account (0700), in ``<root>/jobs``, which
is sticky and open to every account (``1733``) since the login cannot give a directory away.
"""

from __future__ import annotations

import logging
import posixpath
from typing import ClassVar

from jobwire.contracts.v1 import GpuInfo, NodeCapacity, RunJob, SshOptions, parse_size
from jobwire.execution import ExecutorSettings, Existing, RunHandle, StartRefused
from jobwire.execution.accounts import Account, AccountRefused, checked
from jobwire.execution.attempt.env import check_allow
from jobwire.execution.attempt.layout import OWN_TREE
from jobwire.execution.gpus import GPUS_FILE, QUERY, GpuSlots, decode_ids, encode_ids, parse_inventory
from jobwire.execution.runner import AttemptDir, ProcessExecutor, prepare_wrapped
from jobwire.execution.runner.executor import ACCOUNT_VARS
from jobwire.execution.runner.sudo import SudoLaunch
from jobwire.execution.transport import TransportError
from jobwire.execution.transport import shell as sh
from jobwire.execution.transport.ssh import SshTransport
from jobwire.execution.transport.sudo import SudoRefused, SudoTransport

from . import config as cf

log = logging.getLogger(__name__)
#: CPU count, then MemTotal in kB, in one round-trip
FACTS_SCRIPT = "getconf _NPROCESSORS_ONLN; sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo"
#: run-as: $1 the root. The login's name and uid, sudo's path ("" if none), whether bash and env are
#: there, then ``MODE PATH`` of the root and each directory above it (the jobs' accounts must pass).
RUN_AS_FACTS_SCRIPT = r"""
id -un && id -u || exit 1
command -v sudo || echo
if [ -x /bin/bash ] && [ -x /usr/bin/env ]; then echo yes; else echo no; fi
p=$1
while :; do
  stat -c '%a %n' -- "$p" || exit 1
  [ "$p" = / ] && break
  p=$(dirname -- "$p")
done
"""


class SshExecutor(ProcessExecutor):
    """One SSH node; build it with :meth:`from_settings` (nodes file in ``JOBWIRE_SSH_CONFIG``)."""

    backend = "ssh"
    options_type = SshOptions
    options_field = "ssh"
    run_as_modes: ClassVar[frozenset[str]] = frozenset({"self", "fixed", "owner"})

    def __init__(
        self, settings: ExecutorSettings, node: cf.NodeConfig, hosts: dict[str, cf.Login] | None = None
    ) -> None:
        self.config = node
        self.ssh = SshTransport(
            node.ssh_host(),
            node.jumps(hosts or {}),
            connect_timeout=node.connect_timeout,
            command_timeout=node.command_timeout,
            keepalive=node.keepalive,
            max_channels=node.max_channels,
            backoff_max=node.reconnect_max,
        )
        # The real root is the remote one, known once connected (``~`` is the remote home).
        super().__init__(settings, self.ssh, "/")
        self.slots = GpuSlots(node.gpus)
        self._cpus = 1.0
        self._memory: int | None = None
        self._failed_probes = 0
        self._smi_broken = False
        # run-as: who the login is on the node, its sudo, and its allowlisted variables
        self._login = node.user or "the login account"
        self._login_uid: int | None = None
        self._sudo = "sudo"
        self._login_env: dict[str, str] = {}
        if self.run_as.create:
            raise ValueError(
                "JOBWIRE_EXECUTOR_CREATE_ACCOUNTS=1 cannot be honoured on an SSH node: its login account "
                "cannot create accounts; the node's admin creates them (and the sudoers rule)"
            )

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> SshExecutor:
        nodes = cf.load(cf.config_path())
        node = nodes.nodes.get(settings.node)
        if node is None:
            raise cf.ConfigError(
                f"node {settings.node!r} is not in the nodes file (has {sorted(nodes.nodes)})"
            )
        return cls(settings, node, nodes.hosts)

    # --- connection and capacity ----------------------------------------------------------------

    async def open(self) -> None:
        root = self.config.root
        if root == "~" or root.startswith("~/"):
            root = posixpath.join(await self.ssh.home(), root[2:])
        if not posixpath.isabs(root):
            raise cf.ConfigError(f"nodes.{self.config.name}.root must be absolute or start with ~/")
        self.root = posixpath.normpath(root)
        await self.transport.mkdir(posixpath.join(self.root, "jobs"))
        if not self.run_as.is_self:
            await self._open_run_as()
        facts = (await self.ssh.shell(sh.script(FACTS_SCRIPT, []))).check(
            "reading the node's CPUs and memory"
        )
        lines = facts.stdout.decode().split()
        self._cpus = float(lines[0]) if lines else 1.0
        self._memory = int(lines[1]) * 1024 if len(lines) > 1 else None
        await self._refresh_gpus()
        log.info(
            "node %s: %s, root %s, capacity %s",
            self.config.name,
            self.ssh.label,
            self.root,
            self.capacity(),
        )

    def capacity(self) -> NodeCapacity:
        """Configured ``slots`` are CPU-only jobs, with one more per GPU. Unconfigured, a GPU node
        offers one slot per GPU, and at least one CPU per GPU: jobs ask for 1 CPU by default, and a
        4-GPU node whose host shows 2 CPUs must still run four 1-GPU jobs (processes here are not
        confined to CPUs; set ``cpus`` in the nodes file to count them strictly)."""
        c = self.config
        gpus = len(self.slots.usable())
        cpus = c.cpus or self._cpus
        if c.cpus is None and gpus > cpus:
            cpus = float(gpus)
        slots = c.slots + gpus if c.slots is not None else gpus or max(1, int(cpus))
        memory = parse_size(c.memory) if c.memory is not None else self._memory
        address = c.address or self.settings.address or c.host
        return NodeCapacity(slots=slots, cpus=cpus, memory=memory, gpus=gpus, address=address)

    def gpus(self) -> list[GpuInfo]:
        return self.slots.infos()

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "host": self.ssh.label}

    async def _refresh_gpus(self) -> None:
        """Ask nvidia-smi (one command); a node without it, or with a broken driver, offers no GPUs."""
        if self.config.gpus == 0:
            (await self.transport.run(["true"], timeout=self.config.probe_timeout)).check("probing the node")
            return
        result = await self.transport.run([self.config.nvidia_smi, *QUERY], timeout=self.config.probe_timeout)
        if result.rc != 0:
            if not self._smi_broken:
                err = result.stderr.decode("utf-8", "replace").strip()[-500:]
                log.warning(
                    "node %s: nvidia-smi failed (exit %d: %s); no GPUs offered",
                    self.config.name,
                    result.rc,
                    err,
                )
            self._smi_broken = True
            self.slots.update([])
            return
        try:
            inventory = parse_inventory(result.stdout.decode("utf-8", "replace"))
        except ValueError as e:
            log.warning(
                "node %s: cannot read nvidia-smi's answer (%s); keeping the last inventory",
                self.config.name,
                e,
            )
            return
        if self._smi_broken:
            log.info("node %s: nvidia-smi answers again", self.config.name)
        self._smi_broken = False
        self.slots.update(inventory)

    async def check(self) -> bool:
        try:
            await self._refresh_gpus()
        except TransportError as e:
            self._failed_probes += 1
            if self._failed_probes == self.config.down_after:
                log.error(
                    "node %s: %d probes in a row failed (%s); reporting it down",
                    self.config.name,
                    self._failed_probes,
                    e,
                )
            return self._failed_probes < self.config.down_after
        if self._failed_probes >= self.config.down_after:
            log.warning("node %s answers again after %d failed probes", self.config.name, self._failed_probes)
        self._failed_probes = 0
        return True

    # --- run-as ---------------------------------------------------------------------------------

    async def _open_run_as(self) -> None:
        """Check the node can start jobs as other accounts, and lay out the root for it: ``jobs``
        sticky and writable by every account (each makes its own job's directory there, which no
        other account may then rename), ``.executor`` the login's alone."""
        jobs, own = posixpath.join(self.root, "jobs"), posixpath.join(self.root, OWN_TREE)
        await self.transport.mkdir(own)
        await self.transport.chmod(own, 0o700)
        await self.transport.chmod(jobs, 0o1733)
        facts = (await self.ssh.shell(sh.script(RUN_AS_FACTS_SCRIPT, [self.root]))).check(
            "checking the node for run-as"
        )
        lines = facts.stdout.decode("utf-8", "replace").splitlines()
        self._login, self._login_uid, self._sudo = lines[0], int(lines[1]), lines[2]
        where = f"JOBWIRE_EXECUTOR_RUN_AS={self.settings.run_as!r} on node {self.config.name}"
        if not self._sudo:
            raise cf.ConfigError(
                f"{where}: sudo is not installed there (jobs start as their account with it)"
            )
        if lines[3] != "yes":
            raise cf.ConfigError(
                f"{where}: the node needs /bin/bash and /usr/bin/env to start jobs as accounts"
            )
        for line in lines[4:]:
            mode, _, path = line.partition(" ")
            if not int(mode, 8) & 0o001:
                raise cf.ConfigError(
                    f"{where}: the jobs' accounts cannot pass through {path} (mode {mode}) to reach the root "
                    f"{self.root}: give it o+x, or set the node's root below a directory they can pass"
                )
        allow = tuple(p for p in check_allow(self.settings.env_allow) if p not in ACCOUNT_VARS)
        got = (await self.ssh.run(["env", "-0"], env={}, inherit=allow)).check(
            "reading the login environment"
        )
        pairs = (item.partition("=") for item in got.stdout.decode("utf-8", "surrogateescape").split("\0"))
        self._login_env = {k: v for k, sep, v in pairs if sep and k}
        self.files().as_account = self._as_account

    def _as_account(self, name: str) -> SudoTransport:
        return SudoTransport(self.ssh, name, sudo=self._sudo, login=self._login)

    async def _account(self, owner: str) -> Account:
        """The account ``owner``'s jobs run as on this node, as sudo sees it; AccountRefused (the job
        fails with the reason) when the mapping names none, sudo may not run as it, or it is root or
        the login itself."""
        name = self.run_as.account_name(owner)
        if name is None:
            raise AccountRefused("this executor runs jobs as its own login account")
        try:
            who = await self._as_account(name).whoami()
        except SudoRefused as e:
            raise AccountRefused(str(e)) from None
        if who.uid == self._login_uid:
            raise AccountRefused(
                f"the account {name!r} is the executor's own login account on node {self.config.name}: "
                "a job run as it could reach every other job's files"
            )
        return checked(
            Account(who.name, who.uid, who.gid, who.groups, who.home), allow_root=self.run_as.allow_root
        )

    async def _start_as_account(self, run: RunJob) -> RunHandle:
        account = await self._account(run.owner)
        via = SudoLaunch(self._as_account(account.name), self._login_env)
        return await self.launch(await prepare_wrapped(self, run, account, via=via), run)

    # --- GPU slots ------------------------------------------------------------------------------

    async def launch_env(self, run: RunJob, d: AttemptDir) -> dict[str, str]:
        want = run.spec.resources.gpus
        ids = list(run.spec.ssh.gpu_ids) if run.spec.ssh else []
        offered = self.slots.usable()
        if ids and len(ids) != want:
            raise StartRefused(f"ssh.gpu_ids names {len(ids)} GPU(s) but resources.gpus asks for {want}")
        if want > len(offered):
            raise StartRefused(
                f"the job asks for {want} GPU(s); node {self.config.name} offers {len(offered)}"
            )
        if want == 0:
            # CPU-only jobs must not wander onto GPUs that other jobs hold.
            return {"CUDA_VISIBLE_DEVICES": ""} if offered else {}
        key = (run.job_id, run.attempt)
        try:
            chosen = self.slots.assign(key, want, ids)
        except ValueError as e:
            raise StartRefused(str(e)) from None
        try:
            await self.transport.write_file(d.own(GPUS_FILE), f"{encode_ids(chosen)}\n".encode())
        except BaseException:
            self.slots.release(key)
            raise
        log.info(
            "%s attempt %d gets GPU(s) %s on %s",
            run.job_id,
            run.attempt,
            encode_ids(chosen),
            self.config.name,
        )
        visible = encode_ids(chosen)
        return {"CUDA_VISIBLE_DEVICES": visible, "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "JOBWIRE_GPUS": visible}

    async def start(self, run: RunJob) -> RunHandle:
        key = (run.job_id, run.attempt)
        try:
            handle = await (super().start(run) if self.run_as.is_self else self._start_as_account(run))
        except BaseException:
            self.slots.release(key)
            raise
        handle.details["gpus"] = self.slots.allocator.held_by(key)
        return handle

    async def _reclaim(self, handle: RunHandle) -> None:
        """An adopted run keeps the GPUs it was given."""
        try:
            ids = decode_ids(await self.transport.read_file(self.files().of(handle).own(GPUS_FILE)))
        except FileNotFoundError:
            return
        self.slots.hold(handle.key, ids)
        handle.details["gpus"] = ids

    async def adopt(self) -> list[RunHandle]:
        handles = await super().adopt()
        for h in handles:
            await self._reclaim(h)
        return handles

    async def existing(self, job_id: str, attempt: int, rank: int = 0) -> Existing | None:
        found = await super().existing(job_id, attempt, rank)
        if found is not None and found.handle is not None:
            await self._reclaim(found.handle)
        return found

    async def cleanup(self, handle: RunHandle) -> None:
        await super().cleanup(handle)
        self.slots.release(handle.key)

    async def mark_reported(self, handle: RunHandle) -> None:
        await super().mark_reported(handle)
        self.slots.release(handle.key)
