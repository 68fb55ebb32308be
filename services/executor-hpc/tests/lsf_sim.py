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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STATE = Path(os.environ.get("LSF_SIM_DIR", "/tmp/lsf-sim"))
FINISHED = ("DONE", "EXIT")


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
    save(
        job_id, {"stat": "PEND", "name": opts["-J"], "opts": opts, "submit": time.time(), "script": str(path)}
    )
    subprocess.Popen(
        [sys.executable, __file__, "_run", job_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"Job <{job_id}> is submitted to queue <normal>.")
    return 0


def run(job_id: str) -> int:
    pend_for = float(os.environ.get("LSF_SIM_PEND_SECONDS", "0"))
    minute = float(os.environ.get("LSF_SIM_MINUTE", "60"))
    while True:
        with locked():
            job = load(job_id)
            if job is None or job["stat"] in FINISHED:
                return 0
            if job["stat"] == "PEND" and time.time() - float(str(job["submit"])) >= pend_for:
                job.update(stat="RUN", start=time.time(), host="simhost")
                save(job_id, job)
                break
        time.sleep(0.05)
    opts = job["opts"]
    assert isinstance(opts, dict)
    limit = float(opts["-W"]) * minute if "-W" in opts else None
    with open(opts["-o"], "ab") as out, open(opts["-e"], "ab") as err:
        proc = subprocess.Popen(
            ["/bin/sh", str(job["script"])], cwd=opts["-cwd"], stdout=out, stderr=err, start_new_session=True
        )
        update(job_id, pgid=proc.pid)
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
    values = {
        "jobid": job_id,
        "stat": str(job["stat"]),
        "job_name": str(job["name"]),
        "pend_reason": "New job is waiting for scheduling;" if job["stat"] == "PEND" else "-",
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
            if (job := load(p.stem)) and job["name"] == name and job["stat"] not in FINISHED
        ]
        if not found:
            print("No unfinished job found", file=sys.stderr)
            return 255
        for job_id, job in found:
            print(delim.join(field(job_id, job, f) for f in fields))
        return 0
    missing = []
    for job_id in ids:
        job = load(job_id)
        if job is None or (not every and job["stat"] in FINISHED):
            missing.append(job_id)
            continue
        print(delim.join(field(job_id, job, f) for f in fields))
    for job_id in missing:
        print(f"Job <{job_id}> is not found", file=sys.stderr)
    return 255 if missing else 0


def bkill(job_id: str) -> int:
    job = load(job_id)
    if job is None:
        print(f"Job <{job_id}> is not found", file=sys.stderr)
        return 255
    if job["stat"] in FINISHED:
        print(f"Job <{job_id}>: Job has already finished", file=sys.stderr)
        return 255
    if job["stat"] in ("PEND", "PSUSP"):
        update(job_id, stat="EXIT", exit_code=130, reason="TERM_OWNER", end=time.time())
    else:
        pgid = job.get("pgid")
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
        return bkill(args[-1])
    if cmd in ("bstop", "bresume"):
        return bstop(args[-1], resume=cmd == "bresume")
    print(f"lsf simulator: {cmd} is not simulated", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
