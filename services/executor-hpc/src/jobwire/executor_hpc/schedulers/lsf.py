"""IBM Spectrum LSF over its CLI: ``bsub`` (the script on stdin, where LSF reads ``#BSUB`` lines),
``bjobs -o ... delimiter='^'`` for the list and for accounting (``bjobs -a`` keeps finished jobs for
``CLEAN_PERIOD``, an hour by default), ``bkill``, ``bstop``/``bresume`` to hold a pending job.

Native arrays: ``#BSUB -J "jw-...-1[1-20]%5"`` (indices from 1, ``%5`` the slot limit), each
element running with ``LSB_JOBINDEX``. An element's id here is ``123[4]``, as ``bjobs``, ``bkill``,
``bstop`` and ``bresume`` take it; ``bjobs -o`` prints the job id and the index in fields of their own
(``jobid``, ``jobindex``: 0 for a plain job), read back into ``123[4]``. ``bkill 123`` kills every
element; an array's hold names its waiting elements in one ``bstop "123[2,3,5]"`` (``bstop 123``
would suspend the running ones). A later native job of an array waits with ``-w "ended(123)"``.

Tested only against a recorded-output SIMULATOR (``tests/lsf_sim.py``): no LSF can run here. The
formats follow LSF 10.1's documented ``bjobs -o`` output (``-`` for an empty field, ``Job <N> is
not found`` on stderr for an unknown id, exit 255); a real cluster may differ in what we could not see.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import ClassVar

from jobwire.contracts.v1 import JobState, Usage
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
from jobwire.execution.hpc.values import check_path, check_token, memory_mb, parse_size_units
from jobwire.execution.transport import ExecResult

SEP = "^"
LIST_FIELDS = "jobid jobindex stat pend_reason exec_host job_name"
ACCT_FIELDS = "jobid jobindex stat exit_code cpu_used max_mem run_time exit_reason"
#: an array element's id: ``123[4]``
ELEMENT = re.compile(r"^(\d+)\[(\d+)\]$")
QUEUED = {"PEND", "WAIT"}
#: PSUSP: suspended while pending (``bstop``), LSF's hold
HELD = {"PSUSP"}
RUNNING = {"RUN", "USUSP", "SSUSP", "PROV"}
DONE = {"DONE", "EXIT", "ZOMBI"}
SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
#: ``exit_reason`` words that make an EXIT a timeout or a cancel rather than a failure
REASONS: dict[str, tuple[JobState, str]] = {
    "TERM_RUNLIMIT": (JobState.TIMED_OUT, "the batch system's run limit was reached (TERM_RUNLIMIT)"),
    "TERM_OWNER": (JobState.CANCELLED, "killed in the batch system by its owner (TERM_OWNER)"),
    "TERM_ADMIN": (JobState.CANCELLED, "killed in the batch system by an administrator (TERM_ADMIN)"),
}


def _fields(line: str, n: int) -> list[str] | None:
    parts = line.split(SEP, n - 1)  # the last field (a name, a reason) may hold anything
    return parts if len(parts) == n else None


def _job_id(job: str, index: str) -> str:
    """``bjobs -o``'s ``jobid`` and ``jobindex`` as one id: ``123`` (index 0: not an array) or ``123[4]``."""
    i = index.strip()
    return f"{job}[{i}]" if i.isdigit() and i != "0" else job


def _value(text: str) -> str | None:
    t = text.strip()
    return None if t in ("", "-") else t


def _seconds(text: str) -> float | None:
    """``12 second(s)``, ``0.5 second(s)``."""
    m = re.match(r"\s*([0-9.]+)", text)
    return float(m.group(1)) if m else None


def _bytes(text: str) -> int | None:
    """``2 Mbytes``, ``512 Kbytes``."""
    t = _value(text)
    return parse_size_units(t.replace("bytes", "").replace(" ", "")) if t else None


class Lsf(BatchSystem):
    name = "lsf"
    client_env = ("LSF_*",)
    supports_hold = True
    directive_prefix = "#BSUB"
    script_on_stdin = True
    array_task_variable: ClassVar[str | None] = "LSB_JOBINDEX"
    array_first_id: ClassVar[int] = 1

    def directives(self, req: BatchRequest) -> list[Directive]:
        res = req.spec.resources
        d: list[Directive] = [
            ("-J", req.batch_name),
            ("-o", check_path("stdout", req.stdout)),
            ("-e", check_path("stderr", req.stderr)),
            ("-cwd", check_path("job directory", req.job_dir)),
            ("-n", str(max(res.slots, math.ceil(res.cpus)))),
        ]
        if res.nodes == 1:
            d.append(("-R", '"span[hosts=1]"'))
        if req.default_queue:
            d.append(("-q", check_token("queue", req.default_queue)))
        if req.walltime is not None:
            d.append(("-W", str(max(1, math.ceil(req.walltime / 60)))))  # minutes
        if res.memory is not None:
            d.append(("-M", f"{memory_mb(int(res.memory))}MB"))
        if res.gpus:
            d.append(("-gpu", f'"num={res.gpus}"'))
        return d

    # --- native arrays: the index list is part of the job's name ------------------------------

    def with_array(
        self, directives: Sequence[Directive], first: int, last: int, parallelism: int | None
    ) -> list[Directive]:
        limit = f"%{parallelism}" if parallelism else ""
        return [
            (o, f'"{check_token("job name", v)}[{first}-{last}]{limit}"') if o == "-J" else (o, v)
            for o, v in directives
        ]

    def task_id(self, job_id: str, task: int) -> str:
        return f"{job_id}[{task}]"

    def task_job(self, batch_id: str) -> str | None:
        m = ELEMENT.match(batch_id)
        return m.group(1) if m else None

    def after_directives(self, job_id: str) -> list[Directive]:
        """``-w "ended(123)"``: every element of the array (or the job) ended, DONE or EXIT."""
        return [("-w", f'"ended({check_token("job id", job_id)})"')]

    def tasks_target(self, job_id: str, batch_ids: Sequence[str]) -> str:
        """``123[2,3,5]``: the waiting elements by index, so a running one is never suspended."""
        indices = sorted({m.group(2) for b in batch_ids if (m := ELEMENT.match(b))}, key=int)
        return f"{job_id}[{','.join(indices)}]" if indices else job_id

    # --- submit: the script on stdin ----------------------------------------------------------

    def build_submit(self, script_path: str) -> list[str]:
        return [self.cmd("bsub")]  # the script follows on stdin (``script_on_stdin``)

    def parse_submit(self, result: ExecResult) -> str:
        out = check_result("bsub", result)
        m = SUBMITTED.search(out)
        if not m:
            raise SchedulerError(f"bsub printed no job id: {out.strip()[-500:]!r}")
        return m.group(1)

    # --- the list: one bjobs for every id ----------------------------------------------------

    def _bjobs(self, fields: str, ids: Sequence[str]) -> list[str]:
        return [self.cmd("bjobs"), "-a", "-noheader", "-o", f"{fields} delimiter='{SEP}'", *ids]

    def _lines(self, result: ExecResult, what: str) -> list[str]:
        """stdout's lines; ids LSF no longer knows are expected (``is not found``), other errors fail."""
        if result.rc != 0:
            err = result.stderr.decode("utf-8", "replace")
            other = [x for x in err.splitlines() if x.strip() and "is not found" not in x]
            if other:
                raise SchedulerError(f"{what} failed with exit code {result.rc}: {' '.join(other)[-2000:]}")
        return result.stdout.decode("utf-8", "replace").splitlines()

    def build_list(self, ids: Sequence[str]) -> list[str]:
        return self._bjobs(LIST_FIELDS, ids)

    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        wanted = set(ids)
        out: dict[str, QueueEntry] = {}
        for line in self._lines(result, "bjobs"):
            parts = _fields(line, 6)
            if parts is None or _job_id(parts[0], parts[1]) not in wanted:
                continue
            job, index, native, reason, hosts, _name = parts
            job_id = _job_id(job, index)
            nodes = [h.split("*", 1)[-1] for h in (_value(hosts) or "").split(":") if h]
            why = (_value(reason) or "").rstrip(";") or None
            out[job_id] = QueueEntry(job_id, native, self.map_state(native), why, nodes)
        return out

    def map_state(self, native: str) -> Phase:
        if native in QUEUED:
            return Phase.QUEUED
        if native in HELD:
            return Phase.HELD
        if native in RUNNING:
            return Phase.RUNNING
        if native in DONE:
            return Phase.DONE
        return Phase.QUEUED  # UNKWN: LSF lost touch with the host; not an end yet

    def build_find(self, name: str) -> list[str]:
        return [self.cmd("bjobs"), "-noheader", "-J", name, "-o", f"jobid job_name delimiter='{SEP}'"]

    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        if result.rc != 0 and b"No unfinished job found" in result.stderr + result.stdout:
            return []
        lines = self._lines(result, "bjobs -J")
        # an array's elements are listed as ``NAME[4]``: the array is found by its job id
        element = re.compile(re.escape(name) + r"\[\d+\]")
        found = [
            i
            for i, _, n in (line.partition(SEP) for line in lines)
            if i.isdigit() and (n == name or element.fullmatch(n))
        ]
        return list(dict.fromkeys(found))

    # --- kill and hold ------------------------------------------------------------------------

    def build_kill(self, job_id: str) -> list[str]:
        return [self.cmd("bkill"), job_id]

    def already_gone(self, result: ExecResult) -> bool:
        err = result.stderr + result.stdout
        return b"Job has already finished" in err or b"is not found" in err

    def build_hold(self, job_id: str) -> list[str] | None:
        return [self.cmd("bstop"), job_id]

    def build_release(self, job_id: str) -> list[str] | None:
        return [self.cmd("bresume"), job_id]

    # --- accounting: bjobs -a still shows what finished lately -------------------------------

    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        return self._bjobs(ACCT_FIELDS, ids)

    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        wanted = set(ids)
        out: dict[str, Accounting] = {}
        for line in self._lines(result, "bjobs -a"):
            parts = _fields(line, 8)
            if parts is None or _job_id(parts[0], parts[1]) not in wanted:
                continue
            job, index, native, code, cpu, mem, run_time, why = parts
            job_id = _job_id(job, index)
            final = native in DONE
            exit_code = 0 if native == "DONE" else (int(code) if (_value(code) or "").isdigit() else None)
            outcome, reason = REASONS.get(_value(why) or "", (None, None))
            usage = Usage(
                cpu_seconds=_seconds(cpu) if _value(cpu) else None,
                max_rss_bytes=_bytes(mem),
                wall_seconds=_seconds(run_time) if _value(run_time) else None,
            )
            out[job_id] = Accounting(job_id, native, exit_code, outcome, reason, usage, final)
        return out
