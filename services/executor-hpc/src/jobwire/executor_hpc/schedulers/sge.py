"""Son of Grid Engine over its CLI: qsub -terse, qstat -xml -u '*', qacct, qdel, qhold/qrls (8.1.9).

The list covers pending jobs too (they sit under ``<job_info>``, not ``<queue_info>``); ``qacct``
prints values with units (``0.018s``, ``4.809KB``), parsed as such. Names never come from the
user: SGE rejects a job name with a space after consuming a job id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from jobwire.contracts.v1 import JobState, Usage
from jobwire.contracts.v1.spec import SgeOptions
from jobwire.execution.executor import StartRefused
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
)
from jobwire.execution.hpc.xmlout import parse_xml
from jobwire.execution.transport import ExecResult

#: qacct ``failed`` codes that mean a limit was enforced (h_rt, h_cpu, h_vmem)
LIMIT_FAILED = {37, 38}
#: the longest pending reason passed on (qstat -j may list one line per queue instance)
REASON_MAX = 500
#: 100: "assumedly after job", the code a signalled/deleted job gets; the exit status then decides
AFTER_JOB = 100
#: qacct's line between two records, and a record's job number line
RECORD_SEPARATOR = b"=" * 62
JOBNUMBER = re.compile(rb"\njobnumber[ \t]+(\d+)")  # (``^`` with MULTILINE is 50x slower)


class Sge(BatchSystem):
    name = "sge"
    client_env = ("SGE_*",)
    supports_hold = True
    multislot_option = "sge.parallel_environment"

    options_type = SgeOptions
    options_field = "sge"
    directive_prefix = "#$"
    array_task_variable = "SGE_TASK_ID"
    array_first_id = 1
    #: qmaster writes the record when it learns of the end (``accounting_flush_time=00:00:00``), the
    #: same moment the job leaves qstat; qacct reads the file and asks qmaster nothing
    accounting_ends_jobs = True

    def directives(self, req: BatchRequest) -> list[Directive]:
        res, opt = req.spec.resources, req.spec.sge
        d: list[Directive] = [
            ("-N", req.batch_name),
            ("-o", check_path("stdout", req.stdout)),
            ("-e", check_path("stderr", req.stderr)),
            ("-S", "/bin/sh"),
            ("-wd", check_path("job directory", req.job_dir)),
        ]
        queue = (opt.queue if opt else None) or req.default_queue
        if queue:
            d.append(("-q", check_token("queue", queue)))
        slots = max(res.slots, int(-(-res.cpus // 1)))
        pe = (opt.parallel_environment if opt else None) or (
            req.default_parallel_environment if slots > 1 else None
        )
        if pe:
            d.append(("-pe", f"{check_token('parallel environment', pe)} {slots}"))
        elif slots > 1:
            raise StartRefused(
                "more than one slot on SGE needs sge.parallel_environment (such as smp); this node has "
                "no default (JOBWIRE_HPC_PARALLEL_ENVIRONMENT)"
            )
        if req.walltime is not None:
            d.append(("-l", f"h_rt={max(1, int(-(-req.walltime // 1)))}"))
        if res.memory is not None:
            d.append(("-l", f"h_vmem={memory_mb(int(res.memory) // slots)}M"))
        if res.gpus:
            d.append(("-l", f"gpu={res.gpus}"))
        return d

    def setup(self, req: BatchRequest) -> str | None:
        return req.spec.sge.setup if req.spec.sge else None

    def array_directives(self, first: int, last: int, parallelism: int | None) -> list[Directive]:
        d: list[Directive] = [("-t", f"{first}-{last}")]
        if parallelism:
            d.append(("-tc", str(parallelism)))
        return d

    def task_id(self, job_id: str, task: int) -> str:
        return f"{job_id}.{task}"

    def after_directives(self, job_id: str) -> list[Directive]:
        return [("-hold_jid", check_token("job id", job_id))]

    def task_job(self, batch_id: str) -> str | None:
        job, sep, _ = batch_id.partition(".")
        return job if sep else None

    def build_submit(self, script_path: str) -> list[str]:
        return [self.cmd("qsub"), "-terse", script_path]

    def parse_submit(self, result: ExecResult) -> str:
        out = check_result("qsub", result).strip().splitlines()
        job_id = out[0].split(".", 1)[0].strip() if out else ""
        if not job_id.isdigit():
            raise SchedulerError(f"qsub printed no job id: {out!r}")
        return job_id

    def build_list(self, ids: Sequence[str]) -> list[str]:
        # -g d: one entry per array task (pending ones are otherwise one entry, ``<tasks>5-20:1``)
        return [self.cmd("qstat"), "-xml", "-u", "*", "-g", "d"]

    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        root = parse_xml(check_result("qstat", result), "qstat -xml")
        wanted = set(ids)
        out: dict[str, QueueEntry] = {}
        for job in root.iter("job_list"):
            job_id = (job.findtext("JB_job_number") or "").strip()
            task = (job.findtext("tasks") or "").strip()
            if task.isdigit():
                job_id = self.task_id(job_id, int(task))
            if job_id not in wanted:
                continue
            native = (job.findtext("state") or "").strip()
            queue = (job.findtext("queue_name") or "").strip()
            host = queue.split("@", 1)[1] if "@" in queue else ""
            phase = self.map_state(native)
            reason = "the job is in SGE's error state (Eqw): see qstat -j" if "E" in native else None
            out[job_id] = QueueEntry(job_id, native, phase, reason, [host] if host else [])
        return out

    def build_reasons(self, ids: Sequence[str]) -> list[str] | None:
        jobs = dict.fromkeys(i.split(".", 1)[0] for i in ids)  # an array's tasks share its messages
        return [self.cmd("qstat"), "-xml", "-j", ",".join(jobs)]

    def parse_reasons(self, result: ExecResult, ids: Sequence[str]) -> dict[str, str]:
        """The scheduler's messages for each job (``cannot run in PE "smp" because it only offers
        16 slots``), then the messages that hold for all jobs (a queue instance dropped).

        qstat exits 1 when some ids no longer exist, and prints the others still; messages exist
        only with ``schedd_job_info true`` in the scheduler configuration.
        """
        text = result.stdout.decode("utf-8", "replace")
        start = text.find("<?xml")
        if start < 0:
            return {}  # none of the ids exists any more ("Following jobs do not exist")
        root = parse_xml(text[start:], "qstat -xml -j")
        wanted = set(ids)
        bases = {i.split(".", 1)[0] for i in ids}
        own: dict[str, list[str]] = {}
        shared: list[str] = []
        for msg in root.iter("SME_message_list"):
            for el in msg.findall("element"):
                words = " ".join((el.findtext("MES_message") or "").split())
                for num in el.iter("ULNG_value"):
                    job_id = (num.text or "").strip()
                    if words and job_id in bases and words not in own.setdefault(job_id, []):
                        own[job_id].append(words)
        for msg in root.iter("SME_global_message_list"):
            for el in msg.findall("element"):
                words = " ".join((el.findtext("MES_message") or "").split())
                if words and words not in shared:
                    shared.append(words)
        listed = {(j.findtext("JB_job_number") or "").strip() for j in root.iter("element")}
        out: dict[str, str] = {}
        for wanted_id in wanted:
            job_id = wanted_id.split(".", 1)[0]
            lines = own.get(job_id, []) + shared if job_id in listed else []
            if lines:
                out[wanted_id] = "; ".join(lines)[:REASON_MAX]
        return out

    def build_find(self, name: str) -> list[str]:
        return self.build_list([])

    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        root = parse_xml(check_result("qstat", result), "qstat -xml")
        found = [
            (job.findtext("JB_job_number") or "").strip()
            for job in root.iter("job_list")
            if (job.findtext("JB_name") or "").strip() == name
        ]
        return list(dict.fromkeys(found))  # an array's tasks are listed one by one

    def map_state(self, native: str) -> Phase:
        if "d" in native or native in ("z", ""):
            return Phase.DONE
        if "E" in native:
            return Phase.HELD
        if "h" in native and not any(c in native for c in "rt"):
            # ``hr``: a running task of an array held whole keeps running (the hold waits for a requeue)
            return Phase.HELD
        if any(c in native for c in "rtRsST"):
            return Phase.RUNNING
        return Phase.QUEUED

    def build_kill(self, job_id: str) -> list[str]:
        job, _, task = job_id.partition(".")
        return [self.cmd("qdel"), job, "-t", task] if task else [self.cmd("qdel"), job]

    def already_gone(self, result: ExecResult) -> bool:
        return b"does not exist" in result.stderr + result.stdout

    def build_hold(self, job_id: str) -> list[str] | None:
        job, _, task = job_id.partition(".")
        return [self.cmd("qhold"), job, "-t", task] if task else [self.cmd("qhold"), job]

    def build_release(self, job_id: str) -> list[str] | None:
        job, _, task = job_id.partition(".")
        return [self.cmd("qrls"), job, "-t", task] if task else [self.cmd("qrls"), job]

    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        # One call for every job started since the oldest one asked about (minute resolution).
        begin = time.strftime("%m%d%H%M", time.localtime(since - 120))
        return [self.cmd("qacct"), "-j", "*", "-b", begin]

    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        if result.rc != 0 and not result.stdout.strip():
            return {}  # no job finished in the window yet
        raw = result.stdout if result.rc == 0 else check_result("qacct", result).encode()
        wanted = set(ids)
        jobs = {i.split(".", 1)[0].encode() for i in ids}
        out: dict[str, Accounting] = {}
        # the window holds every job started in the last minutes (thousands of records on a busy
        # cluster, asked several times a second while jobs end): one scan for the job numbers, and
        # only the asked ones' records are decoded and parsed
        for number in JOBNUMBER.finditer(raw):
            if number.group(1) not in jobs:
                continue
            start = raw.rfind(RECORD_SEPARATOR, 0, number.start())
            end = raw.find(RECORD_SEPARATOR, number.end())
            block = raw[start + 1 if start >= 0 else 0 : end if end >= 0 else len(raw)]
            rec = parse_qacct_block(block.decode("utf-8", "replace").lstrip("="))
            job_id = rec.get("jobnumber", "")
            task = rec.get("taskid", "")
            if task.isdigit() and job_id not in wanted:
                job_id = f"{job_id}.{task}"  # a native array's task (``undefined`` for a plain job)
            if job_id in wanted:
                out[job_id] = _record(job_id, rec)
        return out


def parse_qacct_block(block: str) -> dict[str, str]:
    """``key   value`` lines; the value keeps inner spaces (``failed 37  : qmaster enforced ...``)."""
    rec: dict[str, str] = {}
    for line in block.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            rec[key] = value.strip()
    return rec


def _first_int(text: str) -> int | None:
    head = text.split()[0] if text.split() else ""
    return int(head) if head.lstrip("-").isdigit() else None


def _record(job_id: str, rec: dict[str, str]) -> Accounting:
    failed = _first_int(rec.get("failed", "0")) or 0
    code = _first_int(rec.get("exit_status", ""))
    outcome: JobState | None = None
    reason: str | None = None
    if failed in LIMIT_FAILED:
        outcome, reason = JobState.TIMED_OUT, f"SGE enforced a limit: {rec['failed']}"
    elif failed and failed != AFTER_JOB:
        outcome, reason = JobState.FAILED, f"SGE could not run the job: {rec['failed']}"
    mem = rec.get("mem", "")
    host = rec.get("hostname", "")
    rss = parse_size_units(rec.get("ru_maxrss", ""))
    usage = Usage(
        wall_seconds=parse_duration_hms(rec.get("ru_wallclock", "")),
        cpu_seconds=parse_duration_hms(rec.get("cpu", "")),
        # getrusage gives ru_maxrss in KiB and qacct 8.1.9 scales that number as if it were bytes
        # (a 60 MiB process prints ``61.445KB``): its printed value is KiB per "byte"
        max_rss_bytes=rss * 1024 if rss is not None else None,
        max_vmem_bytes=parse_size_units(rec.get("maxvmem", "")),
        io_bytes=parse_size_units(rec.get("io", "")),
        # SGE's integral memory usage, in GB·s as qacct reports it (unit suffix ``GBs``/``MBs``...)
        mem_cpu_seconds=(parse_size_units(mem[:-1]) or 0) / 1024**3 if mem.endswith("s") else None,
        node_list=[host] if host else None,
    )
    return Accounting(job_id, f"failed {failed}", code, outcome, reason, usage, True)
