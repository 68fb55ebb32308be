"""SLURM over its CLI: sbatch, squeue, sacct, scancel, scontrol hold/release (checked on 22.05).

Lists use ``^^^`` between fields and put the job name last (split at most N times), so a name that
contains the separator cannot shift a column. A single id is listed twice so squeue does not fail
once the job is purged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import ClassVar

from jobwire.contracts.v1 import JobState, Usage
from jobwire.contracts.v1.spec import SlurmOptions
from jobwire.execution.hpc import (
    Accounting,
    BatchRequest,
    BatchSystem,
    Directive,
    Phase,
    QueueEntry,
    SchedulerError,
)
from jobwire.execution.hpc.base import SETUP_FILE, check_result
from jobwire.execution.hpc.values import (
    check_path,
    check_token,
    memory_mb,
    parse_duration_hms,
    parse_size_units,
    walltime_hms,
)
from jobwire.execution.transport import ExecResult

from . import slurm_gang

SEP = "^^^"
LIST_FORMAT = SEP.join(["%i", "%T", "%r", "%N", "%j"])
ACCT_FIELDS = [
    "JobIDRaw",
    "State",
    "ExitCode",
    "ElapsedRaw",
    "TotalCPU",
    "MaxRSS",
    "NodeList",
    "MaxDiskRead",
    "MaxDiskWrite",
    "Reason",
    "JobName",
]
QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "RESV_DEL_HOLD"}
HELD_STATES = {"REQUEUE_HOLD", "SPECIAL_EXIT"}
HELD_REASONS = {"JobHeldUser", "JobHeldAdmin"}
RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
#: terminal states whose outcome is not simply "the exit code decides"
OUTCOMES: dict[str, tuple[JobState, str | None]] = {
    "TIMEOUT": (JobState.TIMED_OUT, "the batch system's time limit was reached (TIMEOUT)"),
    "DEADLINE": (JobState.TIMED_OUT, "the job's deadline passed (DEADLINE)"),
    "CANCELLED": (JobState.CANCELLED, "cancelled in the batch system (CANCELLED)"),
    "OUT_OF_MEMORY": (JobState.FAILED, "out of memory (OUT_OF_MEMORY)"),
    "NODE_FAIL": (JobState.FAILED, "a node of the job failed (NODE_FAIL)"),
    "BOOT_FAIL": (JobState.FAILED, "the node failed to boot (BOOT_FAIL)"),
    "PREEMPTED": (JobState.FAILED, "preempted (PREEMPTED)"),
    "REVOKED": (JobState.FAILED, "revoked by a sibling cluster (REVOKED)"),
}


def exit_code_of(text: str) -> int | None:
    """``3:0`` → 3; ``0:15`` (killed by signal 15) → 143, the shell's convention."""
    code, _, sig = text.strip().partition(":")
    try:
        c, s = int(code), int(sig or 0)
    except ValueError:
        return None
    return 128 + s if s and not c else c


class Slurm(BatchSystem):
    name = "slurm"
    client_env = ("SLURM_*",)
    supports_hold = True
    # submitted as the job's account: the job's environment is batch.args' alone, never sudo's
    run_as_submit_args = ("--export=NONE",)

    options_type = SlurmOptions
    options_field = "slurm"
    directive_prefix = "#SBATCH"
    array_task_variable: ClassVar[str | None] = "SLURM_ARRAY_TASK_ID"
    gang_launch: ClassVar[bool] = True

    def directives(self, req: BatchRequest) -> list[Directive]:
        res, opt = req.spec.resources, req.spec.slurm
        d: list[Directive] = [
            ("--job-name", req.batch_name),
            ("--output", check_path("stdout", req.stdout)),
            ("--error", check_path("stderr", req.stderr)),
            ("--open-mode", "append"),
            ("--chdir", check_path("job directory", req.job_dir)),
            ("--nodes", str(res.nodes)),
            # a gang: its slots on each node (``--ntasks 1`` over 2 nodes makes sbatch drop to 1 node)
            ("--ntasks-per-node", str(res.slots)) if res.nodes > 1 else ("--ntasks", str(res.slots)),
            ("--cpus-per-task", str(max(1, math.ceil(res.cpus)))),
        ]
        if res.memory is not None:
            d.append(("--mem", f"{memory_mb(int(res.memory))}M"))
        partition = (opt.partition if opt else None) or req.default_queue
        if partition:
            d.append(("--partition", check_token("partition", partition)))
        if opt and opt.account:
            d.append(("--account", check_token("account", opt.account)))
        if opt and opt.qos:
            d.append(("--qos", check_token("qos", opt.qos)))
        if opt and opt.constraints:
            d.append(("--constraint", check_token("constraints", opt.constraints)))
        if opt and opt.gres:
            d.append(("--gres", check_token("gres", opt.gres)))
        elif res.gpus:
            d.append(("--gres", f"gpu:{res.gpus}"))
        if req.walltime is not None:
            d.append(("--time", walltime_hms(req.walltime)))
        return d

    def array_directives(self, first: int, last: int, parallelism: int | None) -> list[Directive]:
        throttle = f"%{parallelism}" if parallelism else ""
        return [("--array", f"{first}-{last}{throttle}")]

    def task_id(self, job_id: str, task: int) -> str:
        return f"{job_id}_{task}"

    def after_directives(self, job_id: str) -> list[Directive]:
        return [("--dependency", f"afterany:{check_token('job id', job_id)}")]

    def task_job(self, batch_id: str) -> str | None:
        job, sep, _ = batch_id.partition("_")
        return job if sep else None

    def render_directive(self, option: str, value: str) -> str:
        return f"#SBATCH {option}={value}"

    def setup(self, req: BatchRequest) -> str | None:
        return req.spec.slurm.setup if req.spec.slurm else None

    def gang_tail(self, req: BatchRequest, with_setup: bool) -> str:
        return slurm_gang.gang_tail(req, with_setup, self.cmd("srun"), SETUP_FILE)

    def launch_files(self, req: BatchRequest) -> dict[str, bytes]:
        files = super().launch_files(req)
        if req.ranks:  # each rank's own args (rank 0's replaces the single job's)
            files.update(slurm_gang.rank_files(req))
        return files

    def build_submit(self, script_path: str) -> list[str]:
        return [self.cmd("sbatch"), "--parsable", script_path]

    def parse_submit(self, result: ExecResult) -> str:
        out = check_result("sbatch", result).strip().splitlines()
        job_id = out[-1].split(";", 1)[0].strip() if out else ""
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch printed no job id: {out!r}")
        return job_id

    def build_list(self, ids: Sequence[str]) -> list[str]:
        wanted = list(ids) * 2 if len(ids) == 1 else list(ids)
        # -r: an array's pending tasks one per line (``123_7``), not one ``123_[7-19%5]`` line
        return [self.cmd("squeue"), "-h", "-r", "-t", "all", "-j", ",".join(wanted), "-o", LIST_FORMAT]

    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        if result.rc != 0 and b"Invalid job id" in result.stderr:
            return {}  # every job asked about was purged
        out: dict[str, QueueEntry] = {}
        wanted = set(ids)
        for line in check_result("squeue", result).splitlines():
            parts = line.split(SEP, 4)
            if len(parts) != 5 or parts[0] not in wanted:
                continue
            job_id, native, reason, nodes, _name = parts
            phase = self.map_state(native)
            if phase is Phase.QUEUED and reason in HELD_REASONS:
                phase = Phase.HELD
            out[job_id] = QueueEntry(
                job_id, native, phase, None if reason in ("None", "") else reason, [n for n in [nodes] if n]
            )
        return out

    def build_find(self, name: str) -> list[str]:
        # %F: an array's own job id (a plain job's id), not one line's ``123_[4-9]``
        return [self.cmd("squeue"), "-h", "-t", "all", "-n", name, "-o", SEP.join(["%F", "%j"])]

    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        lines = check_result("squeue", result).splitlines()
        found = [i for i, _, n in (line.partition(SEP) for line in lines) if n == name and i.isdigit()]
        return list(dict.fromkeys(found))

    def map_state(self, native: str) -> Phase:
        state = native.split()[0] if native.strip() else native
        if state in QUEUED:
            return Phase.QUEUED
        if state in HELD_STATES:
            return Phase.HELD
        if state in RUNNING:
            return Phase.RUNNING
        return Phase.DONE

    def build_kill(self, job_id: str) -> list[str]:
        return [self.cmd("scancel"), job_id]

    def already_gone(self, result: ExecResult) -> bool:
        err = result.stderr + result.stdout
        return b"Invalid job id" in err or b"already completing or completed" in err

    def build_hold(self, job_id: str) -> list[str] | None:
        return [self.cmd("scontrol"), "hold", job_id]

    def build_release(self, job_id: str) -> list[str] | None:
        return [self.cmd("scontrol"), "release", job_id]

    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 3600))
        # an array task's JobIDRaw is a number of its own: it is asked for and read by JobID (123_4)
        fields = ["JobID", *ACCT_FIELDS] if any("_" in i for i in ids) else ACCT_FIELDS
        return [
            self.cmd("sacct"),
            "-n",
            "-P",
            f"--delimiter={SEP}",
            "-S",
            start,
            "-j",
            ",".join(ids),
            "-o",
            ",".join(fields),
        ]

    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        rows: dict[str, list[dict[str, str]]] = {}
        wanted = set(ids)
        fields = ["JobID", *ACCT_FIELDS] if any("_" in i for i in ids) else ACCT_FIELDS
        for line in check_result("sacct", result).splitlines():
            parts = line.split(SEP, len(fields) - 1)
            if len(parts) != len(fields):
                continue
            row = dict(zip(fields, parts, strict=True))
            if "JobID" in row:
                row["JobIDRaw"] = row["JobID"]  # 123_4 and 123_4.batch, as asked
            job = row["JobIDRaw"].split(".", 1)[0]
            if job in wanted:
                rows.setdefault(job, []).append(row)
        return {job: self._record(job, r) for job, r in rows.items() if any(x["JobIDRaw"] == job for x in r)}

    def _record(self, job: str, rows: list[dict[str, str]]) -> Accounting:
        main = next(r for r in rows if r["JobIDRaw"] == job)
        native = main["State"].split()[0] if main["State"].strip() else "UNKNOWN"
        final = self.map_state(native) is Phase.DONE
        outcome, reason = OUTCOMES.get(native, (None, None))
        if native == "FAILED" and main["Reason"] not in ("", "None", "NonZeroExitCode"):
            reason = main["Reason"]
        rss = [v for v in (parse_size_units(r["MaxRSS"]) for r in rows) if v is not None]
        reads = [v for v in (parse_size_units(r["MaxDiskRead"]) for r in rows) if v is not None]
        writes = [v for v in (parse_size_units(r["MaxDiskWrite"]) for r in rows) if v is not None]
        usage = Usage(
            wall_seconds=float(main["ElapsedRaw"]) if main["ElapsedRaw"].isdigit() else None,
            cpu_seconds=parse_duration_hms(main["TotalCPU"]),
            max_rss_bytes=max(rss) if rss else None,
            io_read_bytes=sum(reads) if reads else None,
            io_write_bytes=sum(writes) if writes else None,
            node_list=[main["NodeList"]]
            if main["NodeList"] and main["NodeList"] != "None assigned"
            else None,
        )
        return Accounting(job, native, exit_code_of(main["ExitCode"]), outcome, reason, usage, final)
