"""``SshExecutor``: the detached process runner over SSH, with one GPU slot per job.

Everything about running, logs, cancel and re-adoption is the shared runner's; this adds the
connection, the node's capacity, the GPU inventory with the heartbeat, GPU assignment
(``CUDA_VISIBLE_DEVICES``) and "down" after failed probes.
"""

from __future__ import annotations

import logging
import posixpath

from jobwire.contracts.v1 import GpuInfo, NodeCapacity, RunJob, SshOptions, parse_size
from jobwire.execution import ExecutorSettings, Existing, RunHandle, StartRefused
from jobwire.execution.gpus import GPUS_FILE, QUERY, GpuSlots, decode_ids, encode_ids, parse_inventory
from jobwire.execution.runner import AttemptDir, ProcessExecutor
from jobwire.execution.transport import TransportError
from jobwire.execution.transport import shell as sh
from jobwire.execution.transport.ssh import SshTransport

from . import config as cf

log = logging.getLogger(__name__)
#: CPU count, then MemTotal in kB, in one round-trip
FACTS_SCRIPT = "getconf _NPROCESSORS_ONLN; sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo"


class SshExecutor(ProcessExecutor):
    """One SSH node; build it with :meth:`from_settings` (nodes file in ``JOBWIRE_SSH_CONFIG``)."""

    backend = "ssh"
    options_type = SshOptions
    options_field = "ssh"

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
            handle = await super().start(run)
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
