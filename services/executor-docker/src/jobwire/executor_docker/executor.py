"""``DockerExecutor``: each attempt is one container, its files on the shared storage.

The attempt's files are laid out as every backend's (:mod:`jobwire.execution.attempt.layout`): the
container mounts only the job's directory (progress, outputs, work); the logs copied from the engine
and the executor's bookkeeping are beside it in ``<shared>/.executor``, out of its reach. The
container's labels (``jobwire.job_id``, ``jobwire.attempt``, ``jobwire.node``) are how a restarted
executor finds it again. A tick is one ``GET /containers/json`` for the whole node;
a container is inspected once, when it has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import signal
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import docker
from docker.errors import APIError, ImageNotFound, NotFound

from jobwire.contracts.v1 import NodeCapacity, RunJob, parse_size
from jobwire.contracts.v1.spec import DockerOptions
from jobwire.execution import (
    Executor,
    ExecutorSettings,
    Existing,
    RunHandle,
    RunKey,
    RunStatus,
    StartRefused,
)
from jobwire.execution.attempt import AttemptDir, AttemptFiles
from jobwire.execution.gpus import GpuAllocator
from jobwire.execution.transport.local import LocalTransport

from . import engine
from . import layout as L
from .accounts import container_user
from .container import GANG_NETWORKS, job_files, plan
from .logs import Follower, parse_ts
from .mounts import job_binds
from .settings import DockerSettings, docker_settings

log = logging.getLogger(__name__)
NO_GPU_DRIVER = "could not select device driver"


class DockerExecutor(Executor):
    backend = "docker"
    options_type = DockerOptions
    options_field = "docker"
    #: under ``fixed``/``owner`` the container runs as the mapped account's uid:gid (issue 12)
    run_as_modes: ClassVar[frozenset[str]] = frozenset({"self", "fixed", "owner"})

    def __init__(self, settings: ExecutorSettings, docker_config: DockerSettings | None = None) -> None:
        super().__init__(settings)
        if not self.run_as.is_self and os.geteuid() != 0:
            raise ValueError(
                f"JOBWIRE_EXECUTOR_RUN_AS={settings.run_as!r} needs the Docker executor to run as root "
                "(it gives each job's directory to the job's account)"
            )
        self.config = docker_config or docker_settings()
        if self.config.gang_network not in GANG_NETWORKS:
            raise ValueError(
                f"JOBWIRE_DOCKER_GANG_NETWORK={self.config.gang_network!r}: one of {', '.join(GANG_NETWORKS)}"
            )
        self.shared_root = os.path.abspath(self.config.shared_root)
        roots = self.config.allowed_roots or [self.shared_root]
        self.allowed = [os.path.realpath(r) for r in roots]
        self.fs = LocalTransport()
        self.attempts = AttemptFiles(self.fs, self.shared_root)
        self._client: docker.DockerClient | None = None
        self._capacity = NodeCapacity()
        self._gpu_ids: list[str] = []
        self._engine: dict[str, str] = {}
        self._followers: dict[RunKey, Follower] = {}
        self._gpus: GpuAllocator[str] = GpuAllocator()
        self._ended: dict[RunKey, RunStatus] = {}
        self._exited_seen: dict[RunKey, float] = {}

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> Self:
        return cls(settings, docker_settings())

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise RuntimeError("the Docker executor is not open")
        return self._client

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        self._client = await asyncio.to_thread(engine.connect, self.config)
        info: dict[str, Any] = await asyncio.to_thread(self.client.info)
        s = self.settings
        self._gpu_ids = engine.detect_gpu_ids(self.config, info, s.gpus)
        ncpu = int(info.get("NCPU") or os.cpu_count() or 1)
        self._capacity = NodeCapacity(
            slots=s.slots or ncpu,
            cpus=s.cpus or float(ncpu),
            memory=parse_size(s.memory) if s.memory else info.get("MemTotal"),
            gpus=len(self._gpu_ids),
            # where a gang's other ranks reach this node's rank 0 (host network or its published port)
            address=s.address or engine.advertise_host(self.config),
        )
        self._engine = {
            "docker": engine.engine_url(self.config),
            "engine": str(info.get("ServerVersion", "")),
            "shared_root": self.shared_root,
            "runtimes": ",".join(sorted(info.get("Runtimes") or {})),
        }
        await self.fs.mkdir(posixpath.join(self.shared_root, "jobs"))
        log.info(
            "docker engine %s (%s), capacity %s",
            self._engine["docker"],
            self._engine["engine"],
            self._capacity,
        )

    async def close(self) -> None:
        for f in self._followers.values():
            f.close()
        self._followers.clear()
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    def capacity(self) -> NodeCapacity:
        return self._capacity

    def describe(self) -> dict[str, str]:
        return dict(self._engine)

    def dir_of(self, job_id: str, attempt: int, rank: int = 0) -> AttemptDir:
        return self.files().dir(job_id, attempt, rank)

    # --- start ----------------------------------------------------------------------------------

    async def start(self, run: RunJob) -> RunHandle:
        key = (run.job_id, run.attempt)
        try:
            return await self._start(run)
        except BaseException:
            self._gpus.release(key)
            raise

    async def _start(self, run: RunJob) -> RunHandle:
        d = self.files().for_run(run)
        opts = run.spec.docker or DockerOptions()
        account = await self.run_as.ensure(run.owner)
        user = container_user(opts.user, account, allow_root=self.config.allow_root)
        # another user than root must be able to write its progress, outputs and work files (run.json,
        # which holds the job's environment, is in the executor's own tree, 0700, as for every backend)
        modes = {d.path: 0o777, d.outputs: 0o777, d.work: 0o777} if opts.user is not None else {}
        # inputs the owner never uploaded are paths below the shared root, mounted instead; under
        # run-as the job's directory is given to its account once all of it is written
        placed = await self.files().prepare(
            run,
            d,
            job_files(run, d),
            inputs=self.inputs,
            required_inputs=False,
            modes=modes,
            account=account,
        )
        binds = job_binds(run.spec, self.shared_root, self.allowed, placed)
        gpus = self._allocate_gpus(run)
        p = plan(
            run,
            d,
            node=self.settings.node,
            image=run.spec.image or self.config.default_image,
            binds=binds,
            gpu_ids=gpus,
            init=self.config.init,
            gang_network=self.config.gang_network,
        )
        if user is not None:
            p.create["user"] = user
            if account is not None and len(account.groups) > 1:
                p.create["group_add"] = [str(g) for g in account.groups if g != account.gid]
        await self._ensure_image(p.image, opts.pull_policy)
        container = await self._create(p.image, p.create)
        try:
            await asyncio.to_thread(container.start)
        except APIError as e:
            await self._refuse_started(run, container, e)
            raise
        await asyncio.to_thread(container.reload)
        log.info("started %s attempt %d as container %s", run.job_id, run.attempt, container.short_id)
        return self._track(run, container.attrs)

    async def _ensure_image(self, image: str, policy: str) -> None:
        images = self.client.images

        def present() -> bool:
            try:
                images.get(image)
            except ImageNotFound:
                return False
            return True

        if policy != "always" and await asyncio.to_thread(present):
            return
        if policy == "never":
            raise StartRefused(
                f"image_not_found: image {image!r} is not on this Docker host (pull policy never)"
            )
        try:
            await asyncio.to_thread(images.pull, image)
        except APIError as e:
            raise StartRefused(
                f"image_not_found: image {image!r} could not be pulled ({e.explanation or e})"
            ) from None

    async def _create(self, image: str, create: dict[str, Any]) -> Any:
        containers = self.client.containers
        try:
            return await asyncio.to_thread(containers.create, image, **create)
        except APIError as e:
            if e.status_code != 409:
                if e.status_code == 400:
                    raise StartRefused(f"the Docker engine refused the container: {e.explanation}") from None
                raise
        # A leftover of an earlier try that never started (existing() found none running): replace it.
        old = await asyncio.to_thread(containers.get, create["name"])
        if old.status != "created":
            # Started by a delivery of the same RunJob in flight at once: never replace it.
            raise RuntimeError(f"container {create['name']} already runs; the repeat will find it")
        await asyncio.to_thread(old.remove, force=True)
        return await asyncio.to_thread(containers.create, image, **create)

    async def _refuse_started(self, run: RunJob, container: Any, e: APIError) -> None:
        """A start the engine refuses for good (no GPU driver, bad mount) fails the job at once."""
        text = str(e.explanation or e)
        if NO_GPU_DRIVER in text:
            reason = (
                "gpu_unavailable: this Docker host cannot give GPUs to containers "
                f"(no NVIDIA container runtime): {text}"
            )
        elif e.status_code == 400 or (e.status_code == 500 and "mount" in text):
            reason = f"the Docker engine could not start the container: {text}"
        else:
            await asyncio.to_thread(container.remove, force=True)
            return
        if self.config.keep_failed:
            # Kept for inspection; marked reported so a restart does not adopt it.
            await self.files().mark_reported(self.files().for_run(run))
        else:
            await asyncio.to_thread(container.remove, force=True)
        raise StartRefused(reason) from None

    def _allocate_gpus(self, run: RunJob) -> list[str]:
        """From the one allocator: ``docker.gpu_ids`` exactly, else ``resources.gpus`` free ones."""
        opts = run.spec.docker or DockerOptions()
        key = (run.job_id, run.attempt)
        used = {g for g, holder in self._gpus.busy.items() if holder != key}
        if opts.gpu_ids:
            unknown = [g for g in opts.gpu_ids if g not in self._gpu_ids]
            if unknown:
                raise StartRefused(
                    f"docker.gpu_ids {', '.join(unknown)} are not GPUs of this node "
                    f"(it has: {', '.join(self._gpu_ids) or 'none'})"
                )
            held = [g for g in opts.gpu_ids if g in used]
            if held:
                # placement counted resources.gpus, not which devices: naming one another job holds
                # would share it behind that job's back
                raise StartRefused(
                    f"docker.gpu_ids {', '.join(held)} are held by another job on this node; "
                    "leave docker.gpu_ids out to get free GPUs"
                )
            self._gpus.hold(key, opts.gpu_ids)
            return list(opts.gpu_ids)
        want = run.spec.resources.gpus
        if want == 0:
            return []
        if want > len(self._gpu_ids):
            raise StartRefused(f"the job asks for {want} GPU(s); this node has {len(self._gpu_ids)}")
        return self._gpus.assign(key, want, self._gpu_ids)  # NoFreeGpu: tried again later

    # --- finding runs again ---------------------------------------------------------------------

    def _track(self, run: RunJob, attrs: dict[str, Any]) -> RunHandle:
        key = (run.job_id, run.attempt)
        if key not in self._followers:
            d = self.files().for_run(run)
            self._followers[key] = Follower(
                self.client.api, attrs["Id"], d, self.settings.log_max_bytes
            ).start()
        details = {
            "container": attrs["Id"][:12],
            "image": attrs.get("Config", {}).get("Image"),
            "dir": self.files().for_run(run).path,
        }
        gpus = self._gpus.held_by(key)
        if gpus:
            details["gpus"] = gpus
        began = _finished_at((attrs.get("State") or {}).get("StartedAt"))
        return RunHandle(run, attrs["Id"], details, self._ports(attrs), started_at=began)

    def _ports(self, attrs: dict[str, Any]) -> dict[str, str]:
        host = engine.advertise_host(self.config)
        out: dict[str, str] = {}
        for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
            for b in bindings or []:
                ip = b.get("HostIp") or ""
                if ":" in ip and ip != "::":
                    continue  # prefer the IPv4 binding
                shown = host if ip in ("", "0.0.0.0", "::") else ip  # noqa: S104 - reading, not binding
                out[key] = f"{shown}:{b['HostPort']}"
                break
        return out

    async def _list(self) -> list[dict[str, Any]]:
        """Every container of this node, running or not, in one API call."""
        rows: list[dict[str, Any]] = await asyncio.to_thread(
            self.client.api.containers, all=True, filters={"label": f"{L.LABEL_NODE}={self.settings.node}"}
        )
        return rows

    async def _inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            attrs: dict[str, Any] = await asyncio.to_thread(self.client.api.inspect_container, ref)
        except NotFound:
            return None
        return attrs

    async def _run_of(self, labels: dict[str, str]) -> RunJob | None:
        job_id, attempt = labels[L.LABEL_JOB], int(labels[L.LABEL_ATTEMPT])
        try:
            run = await self.files().read_run(self.dir_of(job_id, attempt, L.rank_label(labels)).private)
        except FileNotFoundError:
            return None
        return run if (run.job_id, run.attempt) == (job_id, attempt) else None

    async def _upgraded(self, d: AttemptDir) -> None:
        """An attempt an executor before the one layout left running: its files moved to theirs now."""
        if await asyncio.to_thread(L.move_split_attempt, d):
            log.info("moved the files of %s from the attempt directory to %s", d.path, d.private)

    async def _handle_of(self, attrs: dict[str, Any]) -> RunHandle | None:
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        run = await self._run_of(labels)
        if run is None:
            return None
        gpus = [g for g in labels.get(L.LABEL_GPUS, "").split(",") if g]
        if gpus:
            self._gpus.hold((run.job_id, run.attempt), gpus)
        return self._track(run, attrs)

    async def existing(self, job_id: str, attempt: int, rank: int = 0) -> Existing | None:
        await self._upgraded(self.dir_of(job_id, attempt, rank))
        if await self.files().is_reported(self.dir_of(job_id, attempt, rank)):
            return Existing(None, reported=True)
        attrs = await self._inspect(L.container_name(job_id, attempt, rank))
        if attrs is None:
            return None
        if attrs["State"]["Status"] == "created":
            return None  # never started: start() replaces it
        handle = await self._handle_of(attrs)
        return Existing(handle, reported=False) if handle else None

    async def adopt(self) -> list[RunHandle]:
        rows = await self._list()
        latest: dict[str, int] = {}
        for row in rows:
            labels = row.get("Labels") or {}
            job, attempt = labels.get(L.LABEL_JOB), labels.get(L.LABEL_ATTEMPT, "")
            if job and attempt.isdigit():
                latest[job] = max(latest.get(job, 0), int(attempt))
        handles: list[RunHandle] = []
        for row in rows:
            labels = row.get("Labels") or {}
            job, attempt = labels.get(L.LABEL_JOB), labels.get(L.LABEL_ATTEMPT, "")
            if not job or not attempt.isdigit():
                continue
            d = self.dir_of(job, int(attempt), L.rank_label(labels))
            if int(attempt) < latest[job]:
                log.info("removing container %s of stale attempt %s of %s", row["Id"][:12], attempt, job)
                await self._remove(row["Id"])
                continue
            await self._upgraded(d)
            if await self.files().is_reported(d):
                # Reported before a crash but not yet removed.
                code = _exit_code_of(row)
                if not (self.config.keep_failed and code != 0):
                    await self._remove(row["Id"])
                continue
            if row.get("State") == "created":
                continue  # its RunJob was never acknowledged and comes again
            attrs = await self._inspect(row["Id"])
            handle = await self._handle_of(attrs) if attrs else None
            if handle is None:
                log.warning("container %s has no job directory in %s; removing it", row["Id"][:12], d.path)
                await self._remove(row["Id"])
                continue
            handles.append(handle)
        return handles

    async def _remove(self, ref: str) -> None:
        with contextlib.suppress(NotFound):
            await asyncio.to_thread(self.client.api.remove_container, ref, v=True, force=True)

    # --- the tick -------------------------------------------------------------------------------

    async def poll(self, handles: Sequence[RunHandle]) -> dict[RunKey, RunStatus]:
        rows = {row["Id"]: row for row in await self._list()}
        dirs = [self.files().of(h).path for h in handles]
        probes = await self.fs.probe(dirs, stat=[L.PROGRESS])
        out: dict[RunKey, RunStatus] = {}
        for h, probe in zip(handles, probes, strict=True):
            stat = probe.stats.get(L.PROGRESS)
            mark = (stat.size, stat.mtime) if stat else None
            out[h.key] = await self._status(h, rows.get(h.ref), mark)
        return out

    async def _status(self, h: RunHandle, row: dict[str, Any] | None, mark: Any) -> RunStatus:
        key = h.key
        follower = self._followers.get(key)
        if follower is None or (follower.failed and row is not None):
            follower = self._followers[key] = Follower(
                self.client.api, h.ref, self.files().of(h), self.settings.log_max_bytes
            ).start()
        sizes = follower.sizes
        if key in self._ended:
            return self._ended[key]
        if row is None:
            return RunStatus(
                True, reason=f"the container {h.ref[:12]} is gone (removed outside jobwire)", log_sizes=sizes
            )
        if row.get("State") not in ("exited", "dead"):
            return RunStatus(False, log_sizes=sizes, progress_mark=mark)
        seen = self._exited_seen.setdefault(key, time.monotonic())
        if not follower.done and time.monotonic() - seen < self.config.log_drain_timeout:
            return RunStatus(False, log_sizes=sizes, progress_mark=mark)  # logs still draining
        follower.close()
        attrs = await self._inspect(h.ref)
        state = (attrs or {}).get("State") or {}
        code = state.get("ExitCode")
        reason = None
        if state.get("OOMKilled") and code != 0:
            limit = h.run.spec.resources.memory_bytes
            reason = "oom: the container ran out of memory" + (f" (limit {limit} bytes)" if limit else "")
        status = RunStatus(
            True,
            exit_code=code if isinstance(code, int) else None,
            reason=reason or (None if isinstance(code, int) else "the container ended without an exit code"),
            ended_at=_finished_at(state.get("FinishedAt")),
            log_sizes=follower.sizes,
            progress_mark=mark,
        )
        self._ended[key] = status
        return status

    async def signal(self, handle: RunHandle, sig: signal.Signals) -> None:
        try:
            await asyncio.to_thread(self.client.api.kill, handle.ref, sig.name)
        except NotFound:
            pass
        except APIError as e:
            if e.status_code != 409:  # 409: not running any more
                raise

    async def mark_reported(self, handle: RunHandle) -> None:
        """Remember the report, then remove the container (kept when it failed and so configured)."""
        key = handle.key
        await super().mark_reported(handle)
        follower = self._followers.pop(key, None)
        if follower is not None:
            follower.close()
        ended = self._ended.pop(key, None)
        self._exited_seen.pop(key, None)
        self._gpus.release(key)
        if not (self.config.keep_failed and (ended is None or ended.exit_code != 0)):
            await self._remove(handle.ref)


def _exit_code_of(row: dict[str, Any]) -> int | None:
    """``Exited (3) 2 seconds ago`` → 3 (the list call gives no exit code of its own)."""
    status = str(row.get("Status", ""))
    if status.startswith("Exited (") and ")" in status:
        try:
            return int(status[len("Exited (") : status.index(")")])
        except ValueError:
            return None
    return None


def _finished_at(raw: Any) -> float | None:
    """Epoch seconds of one of the engine's RFC 3339 times (FinishedAt, StartedAt); None when unset."""
    if not isinstance(raw, str) or raw.startswith("0001-"):
        return None
    ns = parse_ts(raw.encode())
    return ns / 1e9 if ns else None
