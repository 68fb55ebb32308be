"""PBS/Torque over its CLI: qsub, ``qstat -x`` XML (or ``qstat -f`` text), qdel, qhold/qrls.

Torque has no batch accounting command, so finished jobs are read from qstat while the server keeps
them (``keep_completed``: state ``C`` with ``exit_status``) and from the exit-code file otherwise.
Job ids keep their server suffix (``123.server``). Which full-status format is read:

- ``torque``: ``qstat -x`` (XML) by default. Nothing in it is wrapped or split on ``=``, so job
  names with separators, long values and non-ASCII text come through whole.
- ``pbs``: ``qstat -f`` text by default, since PBS Pro/OpenPBS's ``-x`` means "include finished
  jobs" (history) and prints text, not XML.
- ``JOBWIRE_HPC_QSTAT_FORMAT=xml|text`` overrides either (a Torque whose XML is broken: ``text``).

No Torque server is packaged for Debian 12: tests run this adapter against recorded output and a
simulator (named as such).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

from jobwire.contracts.v1 import JobState, Usage
from jobwire.contracts.v1.spec import TorqueOptions
from jobwire.execution.hpc import (
    Accounting,
    BatchRequest,
    BatchSystem,
    Directive,
    Phase,
    QueueEntry,
    SchedulerError,
)
from jobwire.execution.hpc.base import check_result
from jobwire.execution.hpc.values import (
    check_path,
    check_token,
    memory_mb,
    parse_duration_hms,
    parse_size_units,
    walltime_hms,
)
from jobwire.execution.transport import ExecResult

from .torque_formats import exec_hosts, parse_qstat_f, parse_qstat_x

__all__ = ["Pbs", "Torque", "parse_qstat_f", "parse_qstat_x"]

#: exit_status values Torque uses for its own failures (negative) and for signals (256 + signal)
SIGNAL_BASE = 256
WALLTIME_EXCEEDED = -11
#: pbs_mom's JOB_EXEC_* codes (Torque admin guide, "Job exit status")
EXEC_FAILURES = {
    -1: "the job could not start (before its files were staged)",
    -2: "the job could not start (after its files were staged)",
    -3: "the job could not start and was to be retried",
    -4: "the job was aborted on pbs_mom's initialisation",
    -5: "the job was aborted on pbs_mom's initialisation (checkpoint, no migration)",
    -6: "the job was aborted on pbs_mom's initialisation (checkpoint, migration allowed)",
    -7: "the job's restart failed",
    -8: "the job's command could not be executed",
    -9: "the job's stdout/stderr files could not be created",
    -10: "the job exceeded its memory limit",
    -12: "the job exceeded its CPU time limit",
    -13: "the job's cgroup could not be created",
    -14: "the job's prologue failed",
}
FORMATS = ("xml", "text")
#: what qstat's stderr says of an id that left the server (Torque: finished and purged; PBS Pro:
#: finished, kept only in its history): an answer for that id, not a failed command
GONE = ("Unknown Job Id", "Job has finished")


class Torque(BatchSystem):
    name = "torque"
    client_env = ("PBS_*", "TORQUE_*")
    supports_hold = True
    #: the full-status format used unless ``options["qstat_format"]`` names one
    default_format: ClassVar[str] = "xml"

    def __init__(
        self,
        bin_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(bin_dir, env, options)
        self.format = self.options.get("qstat_format") or self.default_format
        if self.format not in FORMATS:
            raise ValueError(f"qstat_format {self.format!r} is not one of {', '.join(FORMATS)}")

    options_type = TorqueOptions
    options_field = "torque"
    directive_prefix = "#PBS"
    array_task_variable: ClassVar[str | None] = "PBS_ARRAYID"

    def directives(self, req: BatchRequest) -> list[Directive]:
        res, opt = req.spec.resources, req.spec.torque
        ppn = (opt.ppn if opt and opt.ppn else None) or max(res.slots, math.ceil(res.cpus))
        nodes = check_token("nodes", opt.nodes) if opt and opt.nodes else str(res.nodes)
        d: list[Directive] = [
            ("-N", req.batch_name),
            ("-o", check_path("stdout", req.stdout)),
            ("-e", check_path("stderr", req.stderr)),
            ("-l", f"nodes={nodes}:ppn={ppn}" + (f":gpus={res.gpus}" if res.gpus else "")),
        ]
        queue = (opt.queue if opt else None) or req.default_queue
        if queue:
            d.append(("-q", check_token("queue", queue)))
        if req.walltime is not None:
            d.append(("-l", f"walltime={walltime_hms(req.walltime)}"))
        if res.memory is not None:
            d.append(("-l", f"mem={memory_mb(int(res.memory))}mb"))
        return d

    def array_directives(self, first: int, last: int, parallelism: int | None) -> list[Directive]:
        # Torque's slot limit: ``-t 0-19%5``
        return [("-t", f"{first}-{last}" + (f"%{parallelism}" if parallelism else ""))]

    def task_id(self, job_id: str, task: int) -> str:
        """``123[].server`` (what qsub prints for an array) and 4 -> ``123[4].server``."""
        return job_id.replace("[]", f"[{task}]", 1)

    def after_directives(self, job_id: str) -> list[Directive]:
        """``-W depend=afteranyarray:123[].server`` for an array (every sub-job ended, whatever its
        exit status), ``afterany:123.server`` for a plain job. Torque holds the dependent job (state
        ``H``, ``Hold_Types=s``) until then; :meth:`parse_list` shows that wait as queued."""
        kind = "afteranyarray" if "[]" in job_id else "afterany"
        return [("-W", f"depend={kind}:{check_token('job id', job_id)}")]

    def task_job(self, batch_id: str) -> str | None:
        head, sep, rest = batch_id.partition("[")
        index, close, tail = rest.partition("]")
        return f"{head}[]{tail}" if sep and close and index.isdigit() else None

    def prelude(self, req: BatchRequest) -> str:
        """PBS starts jobs in the home directory: enter the job's own first."""
        return f"cd {check_path('job directory', req.job_dir)} || exit 1\n"

    def setup(self, req: BatchRequest) -> str | None:
        return req.spec.torque.setup if req.spec.torque else None

    def build_submit(self, script_path: str) -> list[str]:
        return [self.cmd("qsub"), script_path]

    def parse_submit(self, result: ExecResult) -> str:
        out = check_result("qsub", result).strip().splitlines()
        job_id = out[-1].strip() if out else ""
        if not job_id or not job_id.split(".", 1)[0].removesuffix("[]").isdigit():  # 123[]: an array
            raise SchedulerError(f"qsub printed no job id: {out!r}")
        return job_id

    # --- listing: one qstat for every id --------------------------------------------------------

    def _qstat(self, ids: Sequence[str]) -> list[str]:
        return [self.cmd("qstat"), "-x" if self.format == "xml" else "-f", *ids]

    def _read(self, result: ExecResult) -> dict[str, dict[str, str]]:
        """Jobs of a qstat answer; ids the server forgot are absent, any other complaint is an error.

        qstat prints one status (one XML document) per id, its error messages after them all, and
        exits non-zero when any id failed: unknown ids are expected (finished and purged), but a
        lost connection halfway would make the ids after it look gone, so that fails the whole call.
        """
        if result.rc != 0:
            err = result.stderr.decode("utf-8", "replace")
            other = [x for x in err.splitlines() if x.strip() and not any(g in x for g in GONE)]
            if other or not err.strip():
                flag = "-x" if self.format == "xml" else "-f"
                raise SchedulerError(f"qstat {flag} failed with exit code {result.rc}: {err.strip()[-2000:]}")
        text = result.stdout.decode("utf-8", "replace")
        return parse_qstat_x(text) if self.format == "xml" else parse_qstat_f(text)

    def build_list(self, ids: Sequence[str]) -> list[str]:
        return self._qstat(ids)

    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        wanted = set(ids)
        out: dict[str, QueueEntry] = {}
        for job_id, attrs in self._read(result).items():
            if job_id not in wanted:
                continue
            native = attrs.get("job_state", "")
            hosts = exec_hosts(attrs.get("exec_host", ""))
            phase, reason = self.map_state(native), _reason(native, attrs)
            if phase is Phase.HELD and _waits_for_dependency(attrs):
                phase, reason = Phase.QUEUED, f"waiting for its dependency ({attrs['depend']})"
            out[job_id] = QueueEntry(job_id, native, phase, reason, hosts)
        return out

    def build_find(self, name: str) -> list[str]:
        return self._qstat([])

    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        check_result("qstat", result)
        found = []
        for job_id, attrs in self._read(result).items():
            array = self.task_job(job_id)
            # an array's sub-jobs are named NAME-INDEX; the array is found by its own id
            if array is not None and attrs.get("Job_Name", "").rpartition("-")[0] == name:
                found.append(array)
            elif attrs.get("Job_Name") == name:
                found.append(job_id)
        return list(dict.fromkeys(found))

    def map_state(self, native: str) -> Phase:
        return {
            "Q": Phase.QUEUED,
            "W": Phase.QUEUED,
            "T": Phase.QUEUED,
            "H": Phase.HELD,
            "R": Phase.RUNNING,
            "E": Phase.RUNNING,
            "S": Phase.RUNNING,
            "C": Phase.DONE,
        }.get(native, Phase.DONE)

    def build_kill(self, job_id: str) -> list[str]:
        return [self.cmd("qdel"), job_id]

    def already_gone(self, result: ExecResult) -> bool:
        err = result.stderr
        return any(g.encode() in err for g in GONE) or b"invalid state for job - COMPLETE" in err

    def build_hold(self, job_id: str) -> list[str] | None:
        return [self.cmd("qhold"), job_id]

    def build_release(self, job_id: str) -> list[str] | None:
        return [self.cmd("qrls"), job_id]

    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        return self._qstat(ids)

    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        wanted = set(ids)
        out: dict[str, Accounting] = {}
        for job_id, a in self._read(result).items():
            # PBS Pro spells it Exit_status and ends jobs in F (seen with its qstat -x history)
            status_text = a.get("exit_status", a.get("Exit_status", "")).strip()
            if job_id not in wanted or a.get("job_state") not in ("C", "F") or not status_text:
                continue
            try:
                status = int(status_text)
            except ValueError:
                continue
            out[job_id] = _accounting(job_id, a, status)
        return out


class Pbs(Torque):
    """PBS Pro / OpenPBS (and Torque set up as ``pbs``): the same commands, ``qstat -f`` text by default."""

    name = "pbs"
    default_format = "text"
    #: PBS Pro arrays are ``-J 0-19`` with ``PBS_ARRAY_INDEX`` and no slot limit in the range:
    #: each task stays a job of its own here
    array_task_variable = None


def _reason(native: str, attrs: dict[str, str]) -> str | None:
    """Why a job waits: the scheduler's comment, else what holds it or when it may start."""
    if native not in ("Q", "H", "W"):
        return None
    if comment := attrs.get("comment", "").strip():
        return comment
    if native == "H" and (types := attrs.get("Hold_Types", "").strip()) and types != "n":
        return f"Hold_Types={types}"
    if native == "W" and (when := attrs.get("Execution_Time", "").strip()):
        return f"Execution_Time={when}"
    return None


def _waits_for_dependency(attrs: dict[str, str]) -> bool:
    """Held by the server alone (``Hold_Types=s``) while a ``depend`` is unmet: Torque's way of
    making a job wait for another, not a hold anyone asked for (a user hold adds ``u``)."""
    return attrs.get("Hold_Types", "").strip() == "s" and bool(attrs.get("depend", "").strip())


def _accounting(job_id: str, a: dict[str, str], status: int) -> Accounting:
    """exit_status read the way Torque writes it: the script's code, -N for pbs_mom's own
    failures (-11: walltime), 256+N when a signal killed it (a walltime kill can show as 265)."""
    wall = parse_duration_hms(a.get("resources_used.walltime", ""))
    limit = parse_duration_hms(a.get("Resource_List.walltime", ""))
    outcome: JobState | None = None
    reason: str | None = None
    code: int | None = status
    if status == WALLTIME_EXCEEDED:
        outcome, reason, code = JobState.TIMED_OUT, "Torque: walltime exceeded (exit_status -11)", None
    elif status < 0:
        why = EXEC_FAILURES.get(status, "pbs_mom could not run the job")
        outcome, reason, code = JobState.FAILED, f"Torque: {why} (exit_status {status})", None
    elif status > SIGNAL_BASE:
        code = 128 + status - SIGNAL_BASE
        if wall is not None and limit is not None and wall >= limit:
            outcome = JobState.TIMED_OUT
            reason = f"Torque: killed by signal {status - SIGNAL_BASE} at its walltime limit"
    hosts = exec_hosts(a.get("exec_host", ""))
    usage = Usage(
        wall_seconds=wall,
        cpu_seconds=parse_duration_hms(a.get("resources_used.cput", "")),
        max_rss_bytes=_size(a.get("resources_used.mem", "")),
        node_list=hosts or None,
    )
    native = a.get("job_state", "C")
    return Accounting(job_id, native, code, outcome, reason, usage, True)


def _size(text: str) -> int | None:
    """Torque's sizes (``10432kb``, ``4gb``, ``512b``, ``8mw``: words) → bytes."""
    t = text.strip().lower()
    words = t.endswith("w")
    t = t.removesuffix("b").removesuffix("w")
    n = parse_size_units(t.upper())
    return n * 8 if n is not None and words else n
