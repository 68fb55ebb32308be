#!/usr/bin/env python3
"""An LSF command SIMULATOR (bsub, bjobs, bkill, bstop, bresume), not LSF: IBM Spectrum LSF cannot
be installed here. It answers in LSF 10.1's documented formats and runs each script as a local
process; state lives in ``$LSF_SIM_DIR``. Invoked through wrappers that set ``LSF_SIM_CMD``.

What it reproduces (IBM's LSF 10.1 command reference for ``bsub``, ``bjobs -o``, ``bkill``,
``bstop``, ``bresume``):

- ``bsub`` reads the script on stdin, takes ``#BSUB -J/-o/-e/-cwd/-W`` lines from it, prints
  ``Job <N> is submitted to queue <normal>.``
- ``bjobs [-a] -noheader -o "FIELDS delimiter='^'" ids...``: one line per known id, ``-`` for an
  empty field, ``Job <N> is not found`` on stderr for the others and exit 255; without ``-a``,
  finished jobs are left out; ``-J NAME`` lists unfinished jobs of that name (``No unfinished job
  found`` on stderr, exit 255, when none).
- States: PEND (for ``$LSF_SIM_PEND_SECONDS``, default 0) -> RUN -> DONE (exit 0) or EXIT;
  ``bstop`` PEND -> PSUSP, ``bresume`` PSUSP -> PEND; ``-W`` minutes (scaled by
  ``$LSF_SIM_MINUTE``, seconds per minute, default 60) is enforced: EXIT with ``TERM_RUNLIMIT``;
  ``bkill`` ends a job with ``TERM_OWNER`` (exit 130 once it ran); ``bkill`` of a finished job
  prints ``Job has already finished`` and exits 255.
- Job arrays (``bsub -J "NAME[1-20]%5"``, the bsub -J and job-arrays pages): one job id for the
  array, each element ``123[4]`` running with ``LSB_JOBINDEX=4`` and ``LSB_JOBID=123``, at most the
  slot limit (``%5``) of them running at once. ``bjobs -o`` prints an element's ``jobid`` as ``123``
  and its index in ``jobindex`` (0 for a plain job), its ``job_name`` as ``NAME[4]``; ``bjobs 123``
  lists every element, ``bjobs "123[4]"`` one; ``-J NAME`` finds the array by its name.
  ``bkill``/``bstop``/``bresume`` take ``123`` (every element), ``123[4]`` or ``123[2,3,5]``
  (``job_ID[index_list]``), answering one line per element.
- Dependencies (``bsub -w "ended(123)"``): the job pends with ``Job dependency condition not
  satisfied;`` until job 123 (every element of an array) is DONE or EXIT.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STATE = Path(os.environ.get("LSF_SIM_DIR", "/tmp/lsf-sim"))
FINISHED = ("DONE", "EXIT")
ARRAY_NAME = re.compile(r'^"?([^"\[]+)\[(\d+)-(\d+)\](?:%(\d+))?"?$')
#: ``123``, ``123[4]``, ``123[2,3,5]``, ``123[1-3]``
JOB_REF = re.compile(r"^(\d+)(?:\[([\d,\-]+)\])?$")
DEPENDENCY = re.compile(r'^"?ended\((\d+)\)"?$')


def load(job_id: str) -> dict[str, object] | None:
    p = STATE / f"{job_id}.json"
    try:
        return json.loads(p.read_text()) if p.exists() else None
    except (json.JSONDecodeError, FileNotFoundError):
        time.sleep(0.01)
        return load(job_id)


def save(job_id: str, job: dict[str, object]) -> None:
    tmp = STATE / f"{job_id}.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(job))
    tmp.replace(STATE / f"{job_id}.json")


def elements(job: str) -> list[str]:
    """The element ids of array ``job`` (``123[1]``, ``123[2]``...), in index order."""
    found = [n.removesuffix(".json") for n in os.listdir(STATE) if re.fullmatch(rf"{job}\[\d+\]\.json", n)]
    return sorted(found, key=lambda e: int(e.split("[", 1)[1].rstrip("]")))


def resolve(ref: str) -> list[str] | None:
    """The ids a command's operand names (a job, an array's elements, an index list), or None."""
    m = JOB_REF.match(ref.strip('"'))
    if m is None:
        return None
    job, indices = m.group(1), m.group(2)
    if load(job) is not None:
        return [job] if indices is None else None
    subs = elements(job)
    if not subs:
        return None
    if indices is None:
        return subs
    wanted: set[int] = set()
    for part in indices.split(","):
        first, _, last = part.partition("-")
        wanted.update(range(int(first), int(last or first) + 1))
    return [e for e in subs if int(e.split("[", 1)[1].rstrip("]")) in wanted]


def dependency_met(depend: str) -> bool:
    """``ended(123)``: job 123, or every element of array 123, is DONE or EXIT (or forgotten)."""
    m = DEPENDENCY.match(depend)
    if m is None:
        return True
    ids = [m.group(1)] if load(m.group(1)) is not None else elements(m.group(1))
    return all((load(i) or {"stat": "DONE"})["stat"] in FINISHED for i in ids)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    with open(STATE / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def update(job_id: str, **changes: object) -> dict[str, object]:
    with locked():
        job = load(job_id) or {}
        if job:
            job.update(changes)
            save(job_id, job)
        return job


def bsub(script: str) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "seq", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read() or 100) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
    job_id = str(n)
    opts = {"-J": "NONAME", "-o": "/dev/null", "-e": "/dev/null", "-cwd": str(Path.cwd())}
    for line in script.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "#BSUB":
            opts[parts[1]] = parts[2]
    path = STATE / f"{job_id}.sh"
    path.write_text(script)
    job = {"stat": "PEND", "name": opts["-J"], "opts": opts, "submit": time.time(), "script": str(path)}
    array = ARRAY_NAME.match(opts["-J"])
    if array is None:
        save(job_id, job)
        start(job_id)
    else:
        name, first, last, limit = array.groups()
        subs = [f"{job_id}[{i}]" for i in range(int(first), int(last) + 1)]
        for i, sub in zip(range(int(first), int(last) + 1), subs, strict=True):
            save(sub, {**job, "name": name, "index": i, "array": job_id, "limit": int(limit or 0)})
        for sub in subs:
            start(sub)
    print(f"Job <{job_id}> is submitted to queue <normal>.")
    return 0


def start(job_id: str) -> None:
    subprocess.Popen(
        [sys.executable, __file__, "_run", job_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def array_full(job: dict[str, object]) -> bool:
    """Whether the element's array already runs as many elements as its slot limit allows."""
    limit = int(str(job.get("limit") or 0))
    if not limit:
        return False
    running = sum(1 for e in elements(str(job["array"])) if (load(e) or {}).get("stat") == "RUN")
    return running >= limit


def run(job_id: str) -> int:
    pend_for = float(os.environ.get("LSF_SIM_PEND_SECONDS", "0"))
    minute = float(os.environ.get("LSF_SIM_MINUTE", "60"))
    while True:
        with locked():
            job = load(job_id)
            if job is None or job["stat"] in FINISHED:
                return 0
            opts = job["opts"]
            assert isinstance(opts, dict)
            ready = dependency_met(str(opts.get("-w", ""))) and not array_full(job)
            if job["stat"] == "PEND" and time.time() - float(str(job["submit"])) >= pend_for and ready:
                job.update(stat="RUN", start=time.time(), host="simhost")
                save(job_id, job)
                break
        time.sleep(0.05)
    opts = job["opts"]
    assert isinstance(opts, dict)
    limit = float(opts["-W"]) * minute if "-W" in opts else None
    env = {
        **os.environ,
        "LSB_JOBID": str(job.get("array") or job_id),
        "LSB_JOBINDEX": str(job.get("index", 0)),
    }
    with open(opts["-o"], "ab") as out, open(opts["-e"], "ab") as err:
        proc = subprocess.Popen(
            ["/bin/sh", str(job["script"])],
            cwd=opts["-cwd"],
            stdout=out,
            stderr=err,
            start_new_session=True,
            env=env,
        )
        if update(job_id, pgid=proc.pid).get("killed"):  # bkill came between RUN and the pgid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=limit)
            reason = "TERM_OWNER" if rc < 0 else None
            code = 128 - rc if rc < 0 else rc
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            code, reason = 140, "TERM_RUNLIMIT"
    stat = "DONE" if code == 0 else "EXIT"
    update(job_id, stat=stat, exit_code=code, reason=reason, end=time.time())
    return 0


def field(job_id: str, job: dict[str, object], name: str) -> str:
    start = job.get("start")
    ran = (float(str(job.get("end") or time.time())) - float(str(start))) if start else None
    opts = job["opts"]
    assert isinstance(opts, dict)
    waits = "New job is waiting for scheduling;"
    if not dependency_met(str(opts.get("-w", ""))):
        waits = "Job dependency condition not satisfied;"
    elif "index" in job and array_full(job):
        waits = "The job array has reached its running element limit;"
    values = {
        "jobid": job_id.split("[", 1)[0],
        "jobindex": str(job.get("index", 0)),
        "stat": str(job["stat"]),
        "job_name": f"{job['name']}[{job['index']}]" if "index" in job else str(job["name"]),
        "pend_reason": waits if job["stat"] == "PEND" else "-",
        "exec_host": str(job.get("host") or "-"),
        "exit_code": str(job["exit_code"]) if job.get("stat") == "EXIT" else "-",
        "exit_reason": str(job.get("reason") or "-"),
        "cpu_used": f"{ran * 0.5:.1f} second(s)" if ran is not None else "-",
        "max_mem": "2 Mbytes" if ran is not None else "-",
        "run_time": f"{int(ran)} second(s)" if ran is not None else "-",
    }
    return values[name]


def bjobs(args: list[str]) -> int:
    every, fields, name, ids = False, ["jobid", "stat"], None, []
    delim = " "
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-a":
            every = True
        elif a == "-noheader":
            pass
        elif a == "-o":
            i += 1
            spec = args[i]
            if "delimiter=" in spec:
                spec, _, d = spec.partition("delimiter=")
                delim = d.strip().strip("'\"")
            fields = spec.split()
        elif a == "-J":
            i += 1
            name = args[i]
        else:
            ids.append(a)
        i += 1
    if name is not None:
        found = [
            (p.stem, job)
            for p in sorted(STATE.glob("*.json"))
            if (job := load(p.stem)) and job["name"] == name.strip('"') and job["stat"] not in FINISHED
        ]
        if not found:
            print("No unfinished job found", file=sys.stderr)
            return 255
        for job_id, job in found:
            print(delim.join(field(job_id, job, f) for f in fields))
        return 0
    missing = []
    for ref in ids:
        shown = [
            (i, job)
            for i in resolve(ref) or []
            if (job := load(i)) is not None and (every or job["stat"] not in FINISHED)
        ]
        if not shown:
            missing.append(ref)
        for job_id, job in shown:
            print(delim.join(field(job_id, job, f) for f in fields))
    for job_id in missing:
        print(f"Job <{job_id}> is not found", file=sys.stderr)
    return 255 if missing else 0


def each(ref: str, act: Callable[[str], int]) -> int:
    """``act`` on every id the operand names; 255 when it names none or any failed."""
    ids = resolve(ref)
    if not ids:
        print(f"Job <{ref.strip(chr(34))}> is not found", file=sys.stderr)
        return 255
    return max(act(i) for i in ids)


def bkill(job_id: str) -> int:
    with locked():  # decided under the lock the job's runner takes to start it
        job = load(job_id)
        if job is None:
            print(f"Job <{job_id}> is not found", file=sys.stderr)
            return 255
        if job["stat"] in FINISHED:
            print(f"Job <{job_id}>: Job has already finished", file=sys.stderr)
            return 255
        pgid = None
        if job["stat"] in ("PEND", "PSUSP"):
            job.update(stat="EXIT", exit_code=130, reason="TERM_OWNER", end=time.time())
        else:  # running: a runner that has not recorded its process group yet kills it when it does
            job["killed"] = True
            pgid = job.get("pgid")
        save(job_id, job)
    if isinstance(pgid, int):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    print(f"Job <{job_id}> is being terminated")
    return 0


def bstop(job_id: str, resume: bool) -> int:
    job = load(job_id)
    if job is None:
        print(f"Job <{job_id}> is not found", file=sys.stderr)
        return 255
    want, to = ("PSUSP", "PEND") if resume else ("PEND", "PSUSP")
    if job["stat"] != want:
        print(f"Job <{job_id}>: The job is not {'suspended' if resume else 'pending'}", file=sys.stderr)
        return 255
    update(job_id, stat=to)
    print(f"Job <{job_id}> is being {'resumed' if resume else 'stopped'}")
    return 0


def main() -> int:
    cmd = os.environ.get("LSF_SIM_CMD") or Path(sys.argv[0]).name
    args = sys.argv[1:]
    if args[:1] == ["_run"]:
        return run(args[1])
    if cmd == "bsub":
        return bsub(sys.stdin.read())
    if cmd == "bjobs":
        return bjobs(args)
    if cmd == "bkill":
        return each(args[-1], bkill)
    if cmd in ("bstop", "bresume"):
        return each(args[-1], lambda i: bstop(i, resume=cmd == "bresume"))
    print(f"lsf simulator: {cmd} is not simulated", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
