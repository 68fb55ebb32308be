"""The ``Executor`` plugin interface: what a backend (local, Docker, HPC, SSH) implements.

A backend starts, polls (all its runs at once), signals and re-adopts runs and says what its node
offers; nothing more. The attempt's files (directory, run.json, inputs, journal, logs, progress,
outputs, the ``reported`` mark) are :mod:`jobwire.execution.attempt`'s, and the rest (consuming work,
reports, heartbeats, log pumping, timeouts, artifacts) is written once in
:mod:`jobwire.execution.service` and :mod:`jobwire.execution.runloop`.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import msgspec

from jobwire.contracts.v1 import (
    GpuInfo,
    JobSpec,
    JobState,
    NodeCapacity,
    RunJob,
    UnknownField,
    Usage,
    convert_strict,
)
from jobwire.contracts.v1 import subjects as sj
from jobwire.contracts.v1.options import schema_of
from jobwire.runtime import plugins

from .accounts import RunAs
from .accounts import StartRefused as StartRefused
from .settings import ExecutorSettings

if TYPE_CHECKING:
    from .attempt import AttemptDir, AttemptFiles
    from .catalog.model import Catalog
    from .inputs import InputSource
    from .transport import Transport

EXECUTORS_GROUP = plugins.GROUPS["executor backend"]
#: The log streams of every run.
STREAMS = ("stdout", "stderr")
RunKey = tuple[str, int]


class StartDeferred(Exception):
    """This node cannot launch anything now for reasons outside the job (its batch system's service
    is down, its credentials expired): the run stays ``starting`` with this message as its reason
    and the launch is tried again with backoff, never counted as a failed attempt."""


class HoldRefused(Exception):
    """This backend cannot hold (or release) the run as asked; the run carries on unchanged."""


@dataclass
class RunHandle:
    """One attempt as its backend knows it; ``ref`` is the backend's name for it (dir, container id)."""

    run: RunJob
    ref: str
    details: dict[str, Any] = field(default_factory=dict)
    #: published ports, ``"8888/tcp" -> "host:port"``, reported with ``running``
    ports: dict[str, str] = field(default_factory=dict)
    #: whether the run runs once started (processes, containers); a batch job waits in its queue
    #: first, and the loop reports ``running`` when a poll first says so
    running: bool = True
    #: epoch seconds the job itself began (the wrapper's start, a container's StartedAt) when the
    #: backend knows it; reports use it instead of the moment the executor noticed
    started_at: float | None = None

    @property
    def key(self) -> RunKey:
        return (self.run.job_id, self.run.attempt)


@dataclass(frozen=True)
class Existing:
    """An attempt the backend already has: a redelivered RunJob must not start it again."""

    handle: RunHandle | None
    reported: bool


@dataclass(frozen=True)
class RunStatus:
    """One poll's view of a run; ``log_sizes`` are the bytes each stream holds so far."""

    ended: bool
    exit_code: int | None = None
    #: why a run ended without an exit code of its own, or why a non-zero exit failed when the
    #: backend knows better than the code (a container's OOM kill)
    reason: str | None = None
    ended_at: float | None = None
    #: epoch seconds the job itself began, when the backend can tell (the wrapper records it): a
    #: short job seen only after it ended is still reported as running from then, not from the poll
    started_at: float | None = None
    log_sizes: dict[str, int] = field(default_factory=dict)
    #: changes whenever the progress file may have changed (None: there is none)
    progress_mark: Hashable | None = None
    #: the backend's own verdict when the exit code alone would mislead (a batch system's walltime
    #: kill is ``timed_out``, a cancel from outside ``cancelled``); ``reason`` says why
    outcome: JobState | None = None
    #: resource use as the backend's accounting reports it (batch systems)
    usage: Usage | None = None
    #: for a run not ended: True when it runs, False while it waits (a batch system queues or holds
    #: it), None when this poll cannot tell (the loop keeps what it reported last)
    running: bool | None = True
    #: why it waits, as the backend says (``pending in slurm: Resources``)
    pending_reason: str | None = None
    #: waiting because it is held in its batch system
    held: bool = False


@dataclass(frozen=True)
class OutputFile:
    name: str
    size: int


class Executor(ABC):
    """A backend. Methods that touch many runs take them all at once: the loop calls them per tick."""

    backend: ClassVar[str] = ""
    #: this backend's options: their msgspec type, and the ``JobSpec`` field that carried them before
    #: ``backend_options`` (``docker``, ``ssh``); a backend without options leaves both None
    options_type: ClassVar[type[msgspec.Struct] | None] = None
    options_field: ClassVar[str | None] = None
    #: the ``JOBWIRE_EXECUTOR_RUN_AS`` modes this backend honours (``self``, ``fixed``, ``owner``);
    #: the service refuses to start with any other, so no job runs as the wrong account
    run_as_modes: ClassVar[frozenset[str]] = frozenset({"self"})

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        #: how a job's owner maps to the OS account it runs as (:mod:`jobwire.execution.accounts`)
        self.run_as: RunAs = settings.run_as_policy()
        #: where a job's named inputs come from; the service sets it once connected to the bus
        self.inputs: InputSource | None = None
        #: the programs ``program: NAME@VERSION`` may name here; the service keeps it rescanned and
        #: published (None: this node offers none)
        self.catalog: Catalog | None = None
        #: where this backend's attempts keep their files; the file methods below read them there
        self.attempts: AttemptFiles | None = None

    @classmethod
    def from_settings(cls, settings: ExecutorSettings) -> Self:
        """Build from settings; a backend with options of its own reads them from the environment here."""
        return cls(settings)

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect to what the backend drives (docker daemon, SSH host); called before anything else."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Running jobs keep running: they are adopted again on the next start."""

    @abstractmethod
    def capacity(self) -> NodeCapacity:
        """What this node offers the scheduler."""

    async def check(self) -> bool:
        """Before each heartbeat: refresh what it reports (GPU inventory) and say whether the node answers.

        False skips the heartbeat, the tick and new work, so the scheduler marks the node down and
        re-queues its jobs; the runs stay tracked and are reported again once it answers.
        """
        return True

    def gpus(self) -> list[GpuInfo]:
        """The node's GPUs for the heartbeat; busy ones name their job."""
        return []

    def on_run_change(self, wake: Callable[[RunKey], None]) -> None:  # noqa: B027 - optional hook
        """Have ``wake`` called (on the event loop) with a run's key when that run may have ended, where
        the backend hears of it sooner than its next poll would; the run loop then polls that run at
        once. A backend that cannot tell (the default) leaves the tick's interval as the only clock."""

    def describe(self) -> dict[str, str]:
        """A few facts for the micro-service metadata and status (host, transport, root)."""
        return {}

    @abstractmethod
    async def start(self, run: RunJob) -> RunHandle:
        """Launch one attempt and return once the launch is recorded durably.

        Raises StartRefused for jobs this node can never run, StartDeferred while the infrastructure
        cannot take any job (the reason is reported); other errors mean "try again later".
        """

    async def start_array(self, runs: Sequence[RunJob]) -> list[RunHandle | BaseException]:
        """Launch tasks of one array dispatched together (``RunArray``); one result per run, in order:
        its handle, or the error its own ``start`` would have raised. A backend with native arrays
        (``NodeCapacity.native_arrays``) submits them as one batch job; this default starts each."""
        out: list[RunHandle | BaseException] = []
        for run in runs:
            try:
                out.append(await self.start(run))
            except Exception as e:
                out.append(e)
        return out

    @abstractmethod
    async def existing(self, job_id: str, attempt: int, rank: int = 0) -> Existing | None:
        """The attempt if it was launched before (by this or an earlier executor process); ``rank``:
        which rank of a gang this node runs (its directory, its container are the rank's)."""

    @abstractmethod
    async def adopt(self) -> list[RunHandle]:
        """Every launched attempt whose end was not yet reported, found after a restart."""

    @abstractmethod
    async def poll(self, handles: Sequence[RunHandle]) -> dict[RunKey, RunStatus]:
        """The state of all ``handles`` in as few round-trips as the backend allows (ideally one)."""

    @abstractmethod
    async def signal(self, handle: RunHandle, sig: signal.Signals) -> None:
        """Send ``sig`` to the whole run (every process it started). After KILL, poll reports it ended."""

    async def launch_env(self, run: RunJob, d: AttemptDir) -> dict[str, str]:
        """Environment this backend gives the attempt (its GPUs, say), over the job's own ``env`` and
        under the ``JOBWIRE_*`` variables. Called once the attempt directory exists, before the launch."""
        return {}

    def log_streams(self, run: RunJob) -> dict[str, str]:
        """The run's logs: each by the name :meth:`read_log` and :attr:`RunStatus.log_sizes` know it,
        to the stream it is published as (``sj.rank_stream``: a gang's rank 2 writes ``stdout-rank2``,
        served by ``?rank=2``). One run, one rank here, except where the backend launches a gang's
        ranks itself inside one run (a SLURM gang's ``rank1/stdout`` is ``stdout-rank1``)."""
        rank = run.gang.rank if run.gang is not None else None
        return {s: sj.rank_stream(s, rank) for s in STREAMS}

    def option_types(self) -> tuple[type[msgspec.Struct] | None, str | None]:
        """(options type, legacy field) for this node; a backend that learns them late overrides it."""
        return self.options_type, self.options_field

    def options_schema(self) -> dict[str, Any] | None:
        """What the node publishes with its capacity, so the gateway checks ``backend_options``."""
        tp, _ = self.option_types()
        return schema_of(tp) if tp is not None else None

    def options(self, spec: JobSpec) -> Any:
        """The job's ``backend_options`` decoded by this backend's type (None when it gives none);
        StartRefused names a bad field. A backend without a legacy field reads its options here."""
        tp, _ = self.option_types()
        if not spec.backend_options:
            return None
        if tp is None:
            raise StartRefused(f"the {self.backend or 'this'} backend takes no backend_options")
        try:
            return convert_strict(spec.backend_options, tp)
        except (msgspec.ValidationError, UnknownField, ValueError) as e:
            raise StartRefused(f"backend_options: {e}") from None

    def with_options(self, run: RunJob) -> RunJob:
        """``run`` with its ``backend_options`` checked, and moved into the legacy field the backend
        reads (``docker``, ``slurm``, ...) where it has one, so every later step sees one place."""
        options = self.options(run.spec)
        _, field_name = self.option_types()
        if options is None or field_name is None:
            return run
        if getattr(run.spec, field_name) is not None:
            raise StartRefused(f"give the options either as {field_name} or as backend_options, not both")
        try:
            # the JobSpec's own rules hold the options against resources (slurm.gres, torque.nodes)
            spec = msgspec.structs.replace(run.spec, **{field_name: options, "backend_options": {}})
        except ValueError as e:
            raise StartRefused(f"backend_options: {e}") from None
        return msgspec.structs.replace(run, spec=spec)

    def can_hold(self) -> bool:
        """Whether :meth:`hold` works here (announced in the node's capacity)."""
        return False

    async def hold(self, handle: RunHandle, release: bool) -> None:
        """Hold a launched run that waits to run (or release it); polls then report it ``held``.

        Raises HoldRefused where the backend cannot.
        """
        raise HoldRefused(f"the {self.backend or 'this'} backend cannot hold a run it launched")

    async def job_files(self, job_id: str, attempt: int) -> tuple[Transport, str] | None:
        """Where an attempt's directory is, and the transport that reaches it (what
        ``GET /v1/jobs/{id}/files`` shows: as the job's account where the executor is not root);
        None where this backend keeps no attempt files. ValueError for a job id that cannot name a
        directory."""
        from .attempt.layout import check_job_id  # here: the attempt package imports this module

        if self.attempts is None:
            return None
        d = self.attempts.dir(check_job_id(job_id), attempt)
        return self.attempts.reach(await self.attempts.account_at(d)), d.path

    async def purge(self, job_id: str) -> None:
        """Remove every attempt directory of ``job_id`` this node keeps (the job was deleted).

        Called only once no attempt of the job is tracked here; a job with nothing here is a no-op.
        """
        from .attempt.layout import check_job_id

        if self.attempts is not None:
            await self.attempts.purge(check_job_id(job_id))

    async def cleanup(self, handle: RunHandle) -> None:  # noqa: B027 - optional hook
        """Called once a run ended, before its last logs are read: stop whatever it left behind."""

    # --- the attempt's files: the same for every backend (``attempts``), so none re-implements them --

    def files(self) -> AttemptFiles:
        if self.attempts is None:
            raise NotImplementedError(f"{type(self).__qualname__} keeps no attempt files (set attempts)")
        return self.attempts

    async def read_log(self, handle: RunHandle, stream: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of ``stream`` (a name of :meth:`log_streams`) from byte ``offset``."""
        f = self.files()
        return await f.read_log(f.of(handle), stream, offset, size)

    async def read_progress(self, handle: RunHandle) -> bytes | None:
        """The job's progress file as written (None when there is none or it is too large)."""
        f = self.files()
        return await f.read_progress(f.of(handle), account_of(handle))

    async def list_outputs(self, handle: RunHandle) -> list[OutputFile]:
        """Regular files the job left in its output directory (no symlinks), names relative to it."""
        f = self.files()
        return await f.list_outputs(f.of(handle), account_of(handle))

    async def read_output(self, handle: RunHandle, name: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of output file ``name`` from ``offset`` (uploads stream through this)."""
        f = self.files()
        return await f.read_output(f.of(handle), name, offset, size, account_of(handle))

    async def load_state(self, handle: RunHandle) -> bytes | None:
        """What the loop saved for this attempt with :meth:`save_state` (None when nothing yet)."""
        f = self.files()
        return await f.load_state(f.of(handle))

    async def save_state(self, handle: RunHandle, data: bytes) -> None:
        """Keep the loop's bookkeeping (log offsets, stop requests) durably, replacing the last."""
        f = self.files()
        await f.save_state(f.of(handle), data)

    async def mark_reported(self, handle: RunHandle) -> None:
        """Remember durably that the end was reported, so :meth:`adopt` skips the attempt; a backend
        that frees something per run (GPUs, a container) does so after calling this."""
        f = self.files()
        await f.mark_reported(f.of(handle))


def account_of(handle: RunHandle) -> str | None:
    """The account whose own directory the run's is, where the executor reaches it as that account."""
    account = handle.details.get("account")
    return account if isinstance(account, str) else None


def load_executor(name: str) -> type[Executor]:
    """The Executor class registered under ``name`` in ``jobwire.executors``, checked against the base."""
    return plugins.load("executor backend", name, Executor)  # type: ignore[type-abstract]
