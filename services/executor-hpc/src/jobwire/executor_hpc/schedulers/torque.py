"""PBS/Torque over its CLI: qsub, ``qstat -f`` stanzas, qdel, qhold/qrls.

Torque has no batch accounting command, so finished jobs are read from ``qstat -f`` while the
server keeps them (``keep_completed``: state ``C`` with ``exit_status``) and from the exit-code
file otherwise. Job ids keep their server suffix (``123.server``). No Torque server is packaged
for Debian 12: tests run this adapter against recorded output and a simulator (named as such).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from jobwire.contracts.v1 import JobState, Usage
from jobwire.execution.hpc import Accounting, BatchRequest, Phase, QueueEntry, Scheduler, SchedulerError
from jobwire.execution.hpc.base import check_result, script_tail
from jobwire.execution.hpc.values import (
    check_path,
    check_token,
    memory_mb,
    parse_duration_hms,
    parse_size_units,
    walltime_hms,
)
from jobwire.execution.transport import ExecResult

#: exit_status values Torque uses for its own failures (negative) and for signals (256 + signal)
SIGNAL_BASE = 256
WALLTIME_EXCEEDED = -11


def parse_qstat_f(text: str) -> dict[str, dict[str, str]]:
    """``Job Id: X`` stanzas of ``key = value`` lines; tab-indented lines continue the last value."""
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last = ""
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.split(":", 1)[1].strip(), {})
            last = ""
        elif current is not None and line.startswith("\t") and last:
            current[last] += line.strip()
        elif current is not None and " = " in line:
            key, _, value = line.strip().partition(" = ")
            current[key] = value
            last = key
    return jobs


class Torque(Scheduler):
    name = "torque"
    supports_hold = True

    def build_script(self, req: BatchRequest) -> str:
        res, opt = req.spec.resources, req.spec.torque
        ppn = (opt.ppn if opt and opt.ppn else None) or max(res.slots, math.ceil(res.cpus))
        nodes = check_token("nodes", opt.nodes) if opt and opt.nodes else str(res.nodes)
        d = [
            f"-N {req.batch_name}",
            f"-o {check_path('stdout', req.stdout)}",
            f"-e {check_path('stderr', req.stderr)}",
            f"-l nodes={nodes}:ppn={ppn}" + (f":gpus={res.gpus}" if res.gpus else ""),
        ]
        queue = (opt.queue if opt else None) or req.default_queue
        if queue:
            d.append(f"-q {check_token('queue', queue)}")
        if req.walltime is not None:
            d.append(f"-l walltime={walltime_hms(req.walltime)}")
        if res.memory is not None:
            d.append(f"-l mem={memory_mb(int(res.memory))}mb")
        head = "#!/bin/sh\n" + "".join(f"#PBS {x}\n" for x in d)
        cd = f"cd {check_path('job directory', req.job_dir)} || exit 1\n"
        return head + cd + script_tail(req, opt.setup if opt else None)

    def build_submit(self, script_path: str) -> list[str]:
        return [self.cmd("qsub"), script_path]

    def parse_submit(self, result: ExecResult) -> str:
        out = check_result("qsub", result).strip().splitlines()
        job_id = out[-1].strip() if out else ""
        if not job_id or not job_id.split(".", 1)[0].isdigit():
            raise SchedulerError(f"qsub printed no job id: {out!r}")
        return job_id

    def build_list(self, ids: Sequence[str]) -> list[str]:
        return [self.cmd("qstat"), "-f", *ids]

    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        # qstat exits non-zero when some id is unknown (finished and purged) but lists the others.
        if result.rc != 0 and b"Unknown Job Id" not in result.stderr:
            raise SchedulerError(
                f"qstat -f failed with exit code {result.rc}: {result.stderr.decode()[-2000:]}"
            )
        wanted = set(ids)
        out: dict[str, QueueEntry] = {}
        for job_id, attrs in parse_qstat_f(result.stdout.decode("utf-8", "replace")).items():
            if job_id not in wanted:
                continue
            native = attrs.get("job_state", "")
            host = attrs.get("exec_host", "").split("/", 1)[0]
            reason = attrs.get("comment") if native in ("H", "W") else None
            out[job_id] = QueueEntry(job_id, native, self.map_state(native), reason, [host] if host else [])
        return out

    def build_find(self, name: str) -> list[str]:
        return [self.cmd("qstat"), "-f"]

    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        jobs = parse_qstat_f(check_result("qstat", result))
        return [job_id for job_id, attrs in jobs.items() if attrs.get("Job_Name") == name]

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
        return b"Unknown Job Id" in result.stderr or b"invalid state for job - COMPLETE" in result.stderr

    def build_hold(self, job_id: str) -> list[str] | None:
        return [self.cmd("qhold"), job_id]

    def build_release(self, job_id: str) -> list[str] | None:
        return [self.cmd("qrls"), job_id]

    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        return [self.cmd("qstat"), "-f", *ids]

    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        if result.rc != 0 and b"Unknown Job Id" not in result.stderr:
            raise SchedulerError(
                f"qstat -f failed with exit code {result.rc}: {result.stderr.decode()[-2000:]}"
            )
        wanted = set(ids)
        out: dict[str, Accounting] = {}
        for job_id, a in parse_qstat_f(result.stdout.decode("utf-8", "replace")).items():
            if job_id not in wanted or a.get("job_state") != "C" or "exit_status" not in a:
                continue
            status = int(a["exit_status"])
            outcome: JobState | None = None
            reason: str | None = None
            code: int | None = status
            if status == WALLTIME_EXCEEDED:
                outcome, reason, code = (
                    JobState.TIMED_OUT,
                    "Torque: walltime exceeded (exit_status -11)",
                    None,
                )
            elif status < 0:
                outcome, reason, code = (
                    JobState.FAILED,
                    f"Torque could not run the job (exit_status {status})",
                    None,
                )
            elif status > SIGNAL_BASE:
                code = 128 + status - SIGNAL_BASE
            host = a.get("exec_host", "").split("/", 1)[0]
            usage = Usage(
                wall_seconds=parse_duration_hms(a.get("resources_used.walltime", "")),
                cpu_seconds=parse_duration_hms(a.get("resources_used.cput", "")),
                max_rss_bytes=parse_size_units(
                    a.get("resources_used.mem", "").replace("kb", "K").replace("mb", "M")
                ),
                node_list=[host] if host else None,
            )
            out[job_id] = Accounting(job_id, "C", code, outcome, reason, usage, True)
        return out
