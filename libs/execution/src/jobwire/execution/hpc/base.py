"""The batch system adapter interface: pure command builders paired with output parsers.

An adapter never runs anything itself. Its batch directives are data (``(option, value)`` pairs
from :meth:`BatchSystem.directives`) rendered into the script's header, and handed as they are to
an adapter that submits a description instead (slurm-rest). The script is fixed text and those
directives only: the job's command, arguments, environment and setup fragment are data files beside
it (:meth:`BatchSystem.launch_files`), so no user text can become a directive (SGE reads ``#$``
lines even inside shell quotes; issue 12). ``build_*`` returns an argv (never a
shell string) and ``parse_*`` reads that command's :class:`ExecResult`; the ``submit``/``list``/
``account``/``kill`` helpers here glue the pairs to a :class:`Transport`, so the same adapter runs
on the login node or across SSH. Listing and accounting take many job ids at once: one command per
poll, not per job.
"""

from __future__ import annotations

import enum
import posixpath
import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import msgspec

from jobwire.contracts.v1 import JobSpec, JobState, Usage
from jobwire.runtime import plugins

from ..attempt import layout as L
from ..executor import StartRefused
from ..transport import ExecResult, Transport
from .values import check_env_name, check_path

HPC_SCHEDULERS_GROUP = plugins.GROUPS["batch system"]
#: beside the script: the job's environment (``NAME=VALUE``) then its argv, each ended by a NUL
ARGS_FILE = "batch.args"
#: beside the script: the owner's setup fragment (``module load ...``), sourced, never inlined
SETUP_FILE = "batch.setup"
#: a line any batch system here would read as its own directive (the rule ``contracts.v1.asks`` uses)
DIRECTIVE_LINE = re.compile(r"^\s*#\s*(SBATCH|PBS|BSUB|\$)", re.IGNORECASE)
#: The fixed program that reads ``batch.args``: bash's ``read -d ''`` takes NUL-ended items byte for
#: byte (newlines, quotes, ``#$`` included) into an array that is passed as arguments, never parsed
#: as shell. xargs -0 was not used: GNU xargs splits a long list into several commands and, when
#: exec fails with E2BIG, retries with fewer arguments, so a truncated command would run.
LAUNCH = (
    '/bin/bash -c \'jw_a=(); while IFS= read -r -d "" jw_x; do jw_a+=("$jw_x"); done <"$1" '
    '&& exec /usr/bin/env "${jw_a[@]}"\' jobwire-launch'
)


class SchedulerError(RuntimeError):
    """A scheduler command failed or printed what its parser cannot read."""


class SchedulerUnavailable(SchedulerError):
    """The batch system's service is down, failing (5xx) or refuses our credentials: a fault of the
    infrastructure, not of the job. Jobs wait with this message as their reason and are tried again."""


class SubmitAsRefused(SchedulerError):
    """sudo would not run the submit command as the job's account (no sudoers rule, unknown user)."""


class Phase(enum.Enum):
    """Where a batch job is, as far as jobwire cares; the native state is kept beside it."""

    QUEUED = "queued"
    HELD = "held"
    RUNNING = "running"
    #: left the queue (or is about to): accounting has the exit code and usage
    DONE = "done"


@dataclass(frozen=True)
class QueueEntry:
    """One job as the list command shows it."""

    id: str
    native: str
    phase: Phase
    reason: str | None = None
    nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Accounting:
    """A finished job as accounting records it; ``outcome`` is None when the exit code alone decides."""

    id: str
    native: str
    exit_code: int | None
    outcome: JobState | None = None
    reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    #: False while accounting still shows the job as pending or running (it lags the queue)
    final: bool = True


@dataclass(frozen=True)
class BatchRequest:
    """Everything a batch script is built from; paths are as the cluster sees them."""

    job_id: str
    attempt: int
    spec: JobSpec
    job_dir: str
    stdout: str
    stderr: str
    #: what runs the job (the fixed wrapper and its arguments, the job's own argv last); written to
    #: :data:`ARGS_FILE`, never into the script
    argv: Sequence[str] = ()
    #: the job's environment, written to :data:`ARGS_FILE` before ``argv``
    env: Mapping[str, str] = field(default_factory=dict)
    default_queue: str | None = None
    #: SGE: the parallel environment of multi-slot jobs that name none (the executor's setting)
    default_parallel_environment: str | None = None
    #: seconds; the scheduler's own time limit
    walltime: float | None = None
    #: a gang launched inside the batch job: this many ranks, one per node (0: not a gang). Set
    #: only for an adapter whose :attr:`BatchSystem.gang_launch` is True.
    ranks: int = 0

    @property
    def batch_name(self) -> str:
        return self.name_of(self.job_id, self.attempt)

    @staticmethod
    def name_of(job_id: str, attempt: int) -> str:
        """A job name every scheduler accepts (no user text: SGE rejects spaces, separators break lists),
        unique per attempt, so a submit cut short by a crash can be found again by name."""
        return "jw-" + "".join(c for c in job_id if c.isalnum())[-12:] + f"-{attempt}"


#: one batch directive: ``("--partition", "gpu")`` for SLURM, ``("-l", "h_rt=60")`` for SGE
Directive = tuple[str, str]


class BatchSystem(ABC):
    """One batch system's commands and output formats. Subclasses are registered entry points
    (``jobwire.hpc_schedulers``). Not the jobwire scheduler service: the cluster's own."""

    name: ClassVar[str] = ""
    supports_hold: ClassVar[bool] = False
    #: the spec option a job of more than one slot must set here unless the executor has a default
    #: for it (SGE: ``sge.parallel_environment``), published with the node's capacity
    multislot_option: ClassVar[str | None] = None
    #: the comment that starts a directive line (``#SBATCH``, ``#$``, ``#PBS``)
    directive_prefix: ClassVar[str] = ""
    #: the submit command reads the script on stdin (LSF's ``bsub < script``), not from a path
    script_on_stdin: ClassVar[bool] = False
    #: the client's own configuration variables (``SLURM_CONF``, ``SGE_ROOT``): the submit command
    #: keeps these of the executor's environment besides the jobs' allowlist, and nothing else
    client_env: ClassVar[tuple[str, ...]] = ()
    #: what the submit command is given when it submits as the job's account (run-as): it must not
    #: hand the submitter's environment to the job (``sbatch --export=NONE``; ``qsub`` exports none
    #: without ``-V``); the job's variables come from :data:`ARGS_FILE` alone
    run_as_submit_args: ClassVar[tuple[str, ...]] = ()
    #: whether jobs can be submitted as their owner's account through ``sudo -n -u`` (CLI adapters);
    #: a REST adapter submits with its own credentials and cannot
    supports_run_as: ClassVar[bool] = True
    #: the jobs' own options: their type and the ``JobSpec`` field they arrive in (``backend_options``
    #: is decoded into that field by the executor); None for a batch system without job options
    options_type: ClassVar[type[msgspec.Struct] | None] = None
    options_field: ClassVar[str | None] = None
    #: native array jobs (``--array``, ``-t``): the variable naming a task's id inside its script,
    #: None where the adapter submits each task as its own job
    array_task_variable: ClassVar[str | None] = None
    #: the first native task id the batch system accepts (SGE and LSF count from 1)
    array_first_id: ClassVar[int] = 0
    #: a gang (``resources.nodes`` > 1) is one batch job that starts its ranks itself, one per node,
    #: with jobwire's rank variables (SLURM's ``srun``): :meth:`gang_tail`, :meth:`launch_files`
    gang_launch: ClassVar[bool] = False
    #: accounting holds a job's final record as soon as the job has ended, often before the list
    #: drops it (SGE writes it when qmaster learns of the end): a job whose wrapper wrote its exit
    #: code is then asked of accounting at once (one call for all such jobs, at most every
    #: ``accounting_interval``) instead of after the next list call shows it gone
    accounting_ends_jobs: ClassVar[bool] = False

    def __init__(
        self,
        bin_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        #: added to every command's environment (``SLURM_CONF``, ``SGE_ROOT``)
        self.env = dict(env or {})
        #: adapter-specific settings (``slurm-rest``: url, user, token file, proxy)
        self.options = dict(options or {})

    async def prepare(self, transport: Transport) -> None:  # noqa: B027 - optional hook
        """Called once before use: detect versions, check the scheduler answers."""

    def cmd(self, name: str) -> str:
        """The binary ``name``, from ``bin_dir`` when one is configured (SGE's real binaries)."""
        return f"{self.bin_dir.rstrip('/')}/{name}" if self.bin_dir else name

    # --- pure pairs ---------------------------------------------------------------------------

    @abstractmethod
    def directives(self, req: BatchRequest) -> list[Directive]:
        """The job's resources and options as this batch system spells them, checked, in order."""

    def setup(self, req: BatchRequest) -> str | None:
        """The job owner's setup fragment for this batch system (``slurm.setup``), run before the job."""
        return None

    def render_directive(self, option: str, value: str) -> str:
        return f"{self.directive_prefix} {option} {value}"

    def prelude(self, req: BatchRequest) -> str:
        """Shell lines between the directives and the setup (Torque's ``cd``): fixed text and
        checked paths only."""
        return ""

    def build_script(self, req: BatchRequest, directives: Sequence[Directive] | None = None) -> str:
        """The batch script: the rendered directives, then fixed text that sources the setup file and
        runs the job from :data:`ARGS_FILE`. Nothing of the job's own text is in it; a directive value
        that could end its line, or any other line a batch system would read as a directive, refuses
        the start instead of reaching the batch system."""
        ds = self.directives(req) if directives is None else directives
        for option, value in ds:
            if any(c in option + value for c in "\n\r\x00"):
                raise StartRefused(f"the batch directive {option} has a value that would end its line")
        head = "#!/bin/sh\n" + "".join(self.render_directive(o, v) + "\n" for o, v in ds)
        with_setup = self.setup(req) is not None
        launch = self.gang_tail(req, with_setup) if req.ranks else script_tail(req, with_setup)
        tail = self.prelude(req) + launch
        stray = [line for line in tail.splitlines() if DIRECTIVE_LINE.match(line)]
        if stray:
            raise StartRefused(f"the batch script would carry a directive line {stray[0][:60]!r}")
        return head + tail

    def gang_tail(self, req: BatchRequest, with_setup: bool) -> str:
        """The fixed part of a gang's script (``req.ranks`` ranks): where :attr:`gang_launch` is set."""
        raise StartRefused(f"{self.name} does not launch gangs inside one batch job")

    def launch_files(self, req: BatchRequest) -> dict[str, bytes]:
        """The data files the script reads, by name in the job's directory: :data:`ARGS_FILE` and,
        when the job has one, :data:`SETUP_FILE`."""
        files = {ARGS_FILE: encode_args(req.env, req.argv)}
        setup = self.setup(req)
        if setup is not None:
            files[SETUP_FILE] = setup.encode()
        return files

    def submit_files(
        self, req: BatchRequest, directives: Sequence[Directive], script: str
    ) -> dict[str, bytes]:
        """Files written beside the script before the submit, by suffix (slurm-rest's ``.json``)."""
        return {}

    def array_directives(self, first: int, last: int, parallelism: int | None) -> list[Directive]:
        """The directives that make the script a native array of task ids ``first..last``, at most
        ``parallelism`` running at once (None: no limit)."""
        raise NotImplementedError(f"{self.name} has no native arrays here")

    def with_array(
        self, directives: Sequence[Directive], first: int, last: int, parallelism: int | None
    ) -> list[Directive]:
        """A job's directives made a native array's: :meth:`array_directives` added, or (where the
        array is spelled in the job's name, LSF's ``-J "name[1-20]%5"``) the name rewritten."""
        return [*directives, *self.array_directives(first, last, parallelism)]

    def task_id(self, job_id: str, task: int) -> str:
        """The id of one native task, as this adapter lists, accounts and kills it (``123_4``)."""
        raise NotImplementedError(f"{self.name} has no native arrays here")

    def after_directives(self, job_id: str) -> list[Directive]:
        """Directives that hold a native array until the native job ``job_id`` has ended (a later
        chunk of the same array); none where the adapter has no such dependency here."""
        return []

    def task_job(self, batch_id: str) -> str | None:
        """The native array job a task id belongs to (``123`` of ``123_4``); None for a plain job."""
        return None

    def build_array_script(
        self, req: BatchRequest, directives: Sequence[Directive], task_dirs: Mapping[int, str]
    ) -> str:
        """The batch script of a native array: the directives, then fixed text that picks the task's
        directory by its native id (checked paths only) and runs that task from its own
        :data:`ARGS_FILE`, its output appended to its own ``stdout``/``stderr``."""
        assert self.array_task_variable is not None
        for option, value in directives:
            if any(c in option + value for c in "\n\r\x00"):
                raise StartRefused(f"the batch directive {option} has a value that would end its line")
        head = "#!/bin/sh\n" + "".join(self.render_directive(o, v) + "\n" for o, v in directives)
        tail = array_tail(self.array_task_variable, task_dirs, self.setup(req) is not None)
        stray = [line for line in tail.splitlines() if DIRECTIVE_LINE.match(line)]
        if stray:
            raise StartRefused(f"the batch script would carry a directive line {stray[0][:60]!r}")
        return head + tail

    @abstractmethod
    def build_submit(self, script_path: str) -> list[str]:
        """argv that submits the script file and prints the job id."""

    @abstractmethod
    def parse_submit(self, result: ExecResult) -> str:
        """The job id from the submit command's output."""

    @abstractmethod
    def build_list(self, ids: Sequence[str]) -> list[str]:
        """ONE argv listing every job in ``ids`` (pending ones included)."""

    @abstractmethod
    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        """The listed jobs by id; a job in ``ids`` that is absent has left the queue."""

    @abstractmethod
    def build_kill(self, job_id: str) -> list[str]:
        """argv that cancels the job."""

    def parse_kill(self, result: ExecResult) -> None:
        """Raise unless the kill was accepted; a job already gone counts as killed."""
        if result.rc != 0 and not self.already_gone(result):
            raise SchedulerError(_err("cancel", result))

    def already_gone(self, result: ExecResult) -> bool:
        """Whether a failed command failed only because the job no longer exists."""
        return False

    @abstractmethod
    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        """ONE argv giving accounting records for ``ids`` (jobs submitted after ``since``, epoch)."""

    @abstractmethod
    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        """Accounting records by id, for the ids that have one."""

    @abstractmethod
    def map_state(self, native: str) -> Phase:
        """The phase of a native state code (``PENDING``, ``qw``, ``Q``)."""

    @abstractmethod
    def build_find(self, name: str) -> list[str]:
        """ONE argv listing queued, held and running jobs named ``name`` (a crashed submit's check)."""

    @abstractmethod
    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        """The ids of the listed jobs named exactly ``name``."""

    def build_reasons(self, ids: Sequence[str]) -> list[str] | None:
        """ONE argv saying why the pending jobs ``ids`` wait, where the list does not already say
        (SGE's ``qstat -j`` scheduling info); None where the list's own reason is all there is."""
        return None

    def parse_reasons(self, result: ExecResult, ids: Sequence[str]) -> dict[str, str]:
        """Why each of ``ids`` waits, for those the output names."""
        return {}

    def build_hold(self, job_id: str) -> list[str] | None:
        """argv that holds a queued job (None: not supported)."""
        return None

    def build_release(self, job_id: str) -> list[str] | None:
        """argv that releases a held job (None: not supported)."""
        return None

    def tasks_target(self, job_id: str, batch_ids: Sequence[str]) -> str:
        """The operand that holds or releases the tasks ``batch_ids`` of the native array ``job_id``
        in one command when they are every task of it that waits: the native job itself (``scontrol
        hold 123``, ``qhold 123``, ``qhold 123[].server``), whose running tasks the batch system
        leaves running (SLURM 22.05 answers 0 and gives them the reason ``JobHeldAdmin``, SGE 8.1.9
        shows them ``hr``, Torque records the hold). An adapter whose hold would touch running tasks
        (LSF's ``bstop`` suspends them) names the tasks instead."""
        return job_id

    # --- glue to a transport --------------------------------------------------------------------

    async def _run(
        self,
        transport: Transport,
        argv: list[str],
        timeout: float = 60.0,
        inherit: Sequence[str] | None = None,
    ) -> ExecResult:
        return await transport.run(argv, env=self.env or None, timeout=timeout, inherit=inherit)

    async def submit(
        self,
        transport: Transport,
        script_path: str,
        inherit: Sequence[str] | None = None,
        as_user: Sequence[str] = (),
    ) -> str:
        """Submit the script; with ``inherit`` the submit command sees only those variables of the
        transport's environment and the adapter's own (``self.env``): ``sbatch`` and ``bsub`` hand
        their whole environment to the job, so the executor's must never reach them.

        ``as_user``: the argv prefix that submits as the job's account (``sudo -n -u alice
        --preserve-env=SLURM_CONF --``, :func:`sudo_argv`); the submit then also takes
        :attr:`run_as_submit_args`."""
        argv = self.build_submit(script_path)
        if as_user:
            argv = [*as_user, argv[0], *self.run_as_submit_args, *argv[1:]]
        if inherit is not None:
            inherit = [*inherit, *self.client_env]
        if self.script_on_stdin:
            script = await transport.read_file(script_path)
            result = await transport.run(argv, stdin=script, env=self.env or None, inherit=inherit)
        else:
            result = await self._run(transport, argv, inherit=inherit)
        if as_user and sudo_refused(result):
            raise SubmitAsRefused(_err("sudo", result))
        return self.parse_submit(result)

    async def list(self, transport: Transport, ids: Sequence[str]) -> dict[str, QueueEntry]:
        if not ids:
            return {}
        return self.parse_list(await self._run(transport, self.build_list(ids)), ids)

    async def account(self, transport: Transport, ids: Sequence[str], since: float) -> dict[str, Accounting]:
        if not ids:
            return {}
        return self.parse_accounting(await self._run(transport, self.build_accounting(ids, since)), ids)

    async def kill(self, transport: Transport, job_id: str) -> None:
        self.parse_kill(await self._run(transport, self.build_kill(job_id)))

    async def reasons(self, transport: Transport, ids: Sequence[str]) -> dict[str, str]:
        argv = self.build_reasons(ids) if ids else None
        if argv is None:
            return {}
        return self.parse_reasons(await self._run(transport, argv), ids)

    async def find(self, transport: Transport, name: str) -> Sequence[str]:
        return self.parse_find(await self._run(transport, self.build_find(name)), name)

    async def hold(self, transport: Transport, job_id: str, release: bool) -> None:
        """Hold or release; SchedulerError when the batch system refuses (the job already runs)."""
        argv = self.build_release(job_id) if release else self.build_hold(job_id)
        if argv is None:
            raise SchedulerError(f"{self.name} cannot hold or release jobs")
        check_result("release" if release else "hold", await self._run(transport, argv))

    async def hold_tasks(
        self, transport: Transport, job_id: str, batch_ids: Sequence[str], release: bool
    ) -> None:
        """Hold or release every waiting task ``batch_ids`` of the native array ``job_id`` in ONE
        command (:meth:`tasks_target`)."""
        await self.hold(transport, self.tasks_target(job_id, batch_ids), release)


def _err(what: str, result: ExecResult) -> str:
    text = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
    return f"{what} failed with exit code {result.rc}: {text[-2000:]}"


def check_result(what: str, result: ExecResult) -> str:
    """stdout as text, or SchedulerError with the command's message."""
    if result.rc != 0:
        raise SchedulerError(_err(what, result))
    return result.stdout.decode("utf-8", "replace")


def registered_schedulers() -> list[str]:
    return plugins.names("batch system")


def load_scheduler(name: str) -> type[BatchSystem]:
    """The adapter class registered as ``name`` in ``jobwire.hpc_schedulers``, checked against the base."""
    return plugins.load("batch system", name, BatchSystem)  # type: ignore[type-abstract]


def encode_args(env: Mapping[str, str], argv: Sequence[str]) -> bytes:
    """``NAME=VALUE`` for each variable, then each argument, every item ended by a NUL: what
    :data:`LAUNCH` hands to ``env``. NUL is the one byte an item cannot hold (the spec refuses it)."""
    if not argv:
        raise StartRefused("the batch job has nothing to run")
    items = [f"{check_env_name(k)}={v}" for k, v in env.items()]
    items += list(argv)
    if any("\x00" in item for item in items):
        raise StartRefused("the job's command or environment holds a NUL byte")
    if "=" in argv[0]:
        raise StartRefused(f"the launched program {argv[0]!r} would be read as a variable")
    return b"".join(item.encode() + b"\0" for item in items)


def script_tail(req: BatchRequest, with_setup: bool) -> str:
    """The fixed part of every batch script after the directives: only checked paths of the job's
    directory appear in it. The setup fragment (``module load openmpi``: the owner's own shell, like
    ``script``) is sourced from its file, so its variables reach the job as before."""
    d = check_path("job directory", req.job_dir)
    q = shlex.quote
    lines = ["# jobwire: fixed text; the job's command and environment are data in " + ARGS_FILE]
    if with_setup:
        lines.append(f". {q(posixpath.join(d, SETUP_FILE))}")
    # the wrapper's own exit status, never a file: under run-as the job's account could rewrite any
    # file it writes, while the batch script's status is what accounting records (sacct, qacct)
    lines.append(f"{LAUNCH} {q(posixpath.join(d, ARGS_FILE))}")
    return "\n".join(lines) + "\n"


def array_tail(variable: str, task_dirs: Mapping[int, str], with_setup: bool) -> str:
    """The fixed part of a native array's script: the task's directory by its native id (a ``case``
    over checked paths of jobwire's own directories), its output redirected there, then what
    :func:`script_tail` runs for a single job, read from that directory's files."""
    q = shlex.quote
    lines = ["# jobwire: fixed text; each task's command and environment are data in its " + ARGS_FILE]
    lines.append(f'case "${{{variable}}}" in')
    for task, d in sorted(task_dirs.items()):
        lines.append(f"{int(task)}) jw_d={q(check_path('job directory', d))} ;;")
    lines.append(f'*) echo "jobwire: no task ${{{variable}}} in this array" >&2; exit 1 ;;')
    lines.append("esac")
    lines.append('cd "$jw_d" || exit 1')
    lines.append('exec >>"$jw_d/stdout" 2>>"$jw_d/stderr"')
    if with_setup:
        lines.append(f'. "$jw_d/{SETUP_FILE}"')
    lines.append(f'{LAUNCH} "$jw_d/{ARGS_FILE}"')
    lines.append(f'jw_rc=$(cat "$jw_d/{L.EXIT_CODE}" 2>/dev/null)')
    lines.append('exit "${jw_rc:-1}"')
    return "\n".join(lines) + "\n"


def sudo_argv(sudo: str, account: str, keep: Sequence[str] = ()) -> list[str]:
    """The argv prefix that runs a batch command as ``account``: never a password prompt (``-n``),
    the environment reset by sudo except the batch client's own configuration ``keep``
    (``SLURM_CONF``, ``SGE_ROOT``)."""
    argv = [sudo, "-n", "-u", account]
    if keep:
        argv.append("--preserve-env=" + ",".join(keep))
    return [*argv, "--"]


def sudo_refused(result: ExecResult) -> bool:
    """Whether a submit through :func:`sudo_argv` failed in sudo itself, before the batch command ran."""
    if result.rc == 0:
        return False
    err = (result.stderr + result.stdout).lstrip()
    return err.startswith((b"sudo:", b"Sorry, user")) or b"is not in the sudoers file" in err
