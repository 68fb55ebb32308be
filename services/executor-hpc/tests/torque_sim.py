#!/usr/bin/env python3
"""A PBS/Torque command SIMULATOR (qsub, qstat -f, qdel), not a Torque server: none is packaged
for Debian 12. It reproduces Torque's output formats (``123.sim`` ids, ``qstat -f`` stanzas,
``Unknown Job Id`` with exit 153, ``exit_status`` 256+signal after qdel) and runs each script as a
local process. State lives in ``$TORQUE_SIM_DIR``. Invoked through symlinks named after the commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("TORQUE_SIM_DIR", "/tmp/torque-sim"))
SERVER = "sim"


def load(job_id: str) -> dict[str, object] | None:
    p = STATE / f"{job_id}.json"
    return json.loads(p.read_text()) if p.exists() else None


def save(job_id: str, job: dict[str, object]) -> None:
    tmp = STATE / f"{job_id}.json.tmp"
    tmp.write_text(json.dumps(job))
    tmp.replace(STATE / f"{job_id}.json")


def qsub(script: str) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "seq", "a+") as f:
        f.seek(0)
        n = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
    job_id = f"{n}.{SERVER}"
    paths = {"-o": "/dev/null", "-e": "/dev/null", "-N": "STDIN"}
    for line in Path(script).read_text().splitlines():
        if line.startswith("#PBS "):
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[1] in paths:
                paths[parts[1]] = parts[2]
    save(
        job_id, {"state": "Q", "name": paths["-N"], "out": paths["-o"], "err": paths["-e"], "script": script}
    )
    subprocess.Popen(
        [sys.executable, __file__, "_run", job_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    print(job_id)
    return 0


def run(job_id: str) -> int:
    job = load(job_id) or {}
    started = time.time()
    with open(str(job["out"]), "ab") as out, open(str(job["err"]), "ab") as err:
        proc = subprocess.Popen(
            ["/bin/sh", str(job["script"])], stdout=out, stderr=err, start_new_session=True
        )
        job.update(state="R", pgid=proc.pid, start=started)
        save(job_id, job)
        rc = proc.wait()
    job = load(job_id) or job
    status = rc if rc >= 0 else 256 - rc  # killed by signal N: 256 + N, as Torque reports it
    job.update(state="C", exit_status=status, walltime=time.time() - started)
    save(job_id, job)
    return 0


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def qstat(args: list[str]) -> int:
    ids = [a for a in args if not a.startswith("-")]
    rc = 0
    for job_id in ids:
        job = load(job_id)
        if job is None:
            print(f"qstat: Unknown Job Id Error {job_id}", file=sys.stderr)
            rc = 153
            continue
        print(f"Job Id: {job_id}")
        print(f"    Job_Name = {job['name']}")
        print("    Job_Owner = root@localhost")
        if job["state"] in ("R", "C"):
            print("    resources_used.cput = 00:00:00")
            print("    resources_used.mem = 1024kb")
            print(f"    resources_used.walltime = {hms(float(str(job.get('walltime', 0))))}")
        print(f"    job_state = {job['state']}")
        print("    queue = batch")
        print(f"    server = {SERVER}")
        if job["state"] in ("R", "C"):
            print("    exec_host = localhost/0")
        print(f"    Output_Path = localhost:{job['out']}")
        print("    Variable_List = PBS_O_QUEUE=batch,PBS_O_HOME=/root,")
        print("\tPBS_O_LOGNAME=root,PBS_O_PATH=/usr/bin:/bin")
        if "exit_status" in job:
            print(f"    exit_status = {job['exit_status']}")
        print()
    return rc


def qdel(job_id: str) -> int:
    job = load(job_id)
    if job is None:
        print(f"qdel: Unknown Job Id {job_id}", file=sys.stderr)
        return 153
    if job["state"] == "C":
        print(
            f"qdel: Request invalid for state of job MSG=invalid state for job - COMPLETE {job_id}",
            file=sys.stderr,
        )
        return 168
    pgid = job.get("pgid")
    if isinstance(pgid, int):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    return 0


def main() -> int:
    cmd = os.environ.get("TORQUE_SIM_CMD") or Path(sys.argv[0]).name
    args = sys.argv[1:]
    if args[:1] == ["_run"]:
        return run(args[1])
    if cmd == "qsub":
        return qsub(args[-1])
    if cmd == "qstat":
        return qstat(args)
    if cmd == "qdel":
        return qdel(args[-1])
    print(f"torque simulator: {cmd} is not simulated", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
