#!/usr/bin/env python3
"""A PBS/Torque command SIMULATOR (qsub, qstat -x / -f, qdel, qhold, qrls), not a Torque server:
none is packaged for Debian 12. It reproduces Torque 6.1's output formats and state changes and runs
each script as a local process; state lives in ``$TORQUE_SIM_DIR``. Invoked through wrappers that
set ``TORQUE_SIM_CMD`` to the command's name.

What it reproduces, as the Torque sources and recorded outputs show it (tests/data/README.md):

- ``123.sim`` ids; ``qstat -x ids...`` prints one ``<?xml version="1.0"?>`` line and one
  single-line ``<Data><Job>..</Job></Data>`` document per id, values escaped like Torque's MXML
  (``&<>"'``), resources nested (``<resources_used><mem>``), times as epoch seconds; ``qstat -f``
  prints ``Job Id:`` stanzas wrapping long values after a comma onto tab-indented lines. Without
  ids, every job (one XML document).
- Unknown ids: ``qstat: Unknown Job Id Error ID`` on stderr after all the output, exit 153.
- States: Q (for ``$TORQUE_SIM_QUEUE_SECONDS``, default 0) → R → C; ``qhold`` Q → H, ``qrls`` H → Q;
  ``-l walltime`` is enforced (SIGTERM to the job, ``exit_status`` -11); a signal ends with 256 +
  signal; ``qdel`` of a finished job fails with ``invalid state for job - COMPLETE`` (exit 168).
- Job arrays (``#PBS -t 0-19%5``): qsub prints ``123[].sim``; each sub-job ``123[4].sim`` is a job of
  its own named ``NAME-4`` that runs with ``PBS_ARRAYID=4``, at most the slot limit (``%5``) of
  them running at once; ``qdel 123[].sim`` deletes every sub-job, ``qdel 123[4].sim`` one.
- Dependencies (``#PBS -W depend=afterany:123.sim`` or ``afteranyarray:123[].sim``): the job is held
  by the server (``H``, ``Hold_Types=s``, its ``depend`` attribute shown) until the job, or every
  sub-job of the array, has ended (C) or been purged, then queued (Q).
- ``qhold``/``qrls`` set and clear the user hold (``u``) beside the server's; ``qhold 123[].sim``
  sets it on every sub-job that has not ended and answers 0, a running one keeping on running with
  the hold recorded (Torque's req_holdarray/hold_job); ``qrls 123[].sim`` clears it on every one.
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

STATE = Path(os.environ.get("TORQUE_SIM_DIR", "/tmp/torque-sim"))
SERVER = "sim"
UNKNOWN_JOB_ID = 153  # PBSE_UNKJOBID (15001) as an exit status
INVALID_STATE = 168  # PBSE_BADSTATE (15016)
LINESIZE = 77  # where qstat -f wraps values


def load(job_id: str) -> dict[str, object] | None:
    p = STATE / f"{job_id}.json"
    try:
        return json.loads(p.read_text()) if p.exists() else None
    except (json.JSONDecodeError, FileNotFoundError):  # replaced under us: read it again
        time.sleep(0.01)
        return load(job_id)


def save(job_id: str, job: dict[str, object]) -> None:
    tmp = STATE / f"{job_id}.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(job))
    tmp.replace(STATE / f"{job_id}.json")


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """qhold/qrls/qdel and the job's runner change the same file: one at a time."""
    with open(STATE / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def update(job_id: str, **changes: object) -> dict[str, object]:
    """Change a job's state; a job the server already forgot stays forgotten."""
    with locked():
        job = load(job_id)
        if job is not None:
            job.update(changes)
            save(job_id, job)
        return job or {}


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def seconds_of(text: str) -> float:
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


# --- qsub and the job's runner --------------------------------------------------------------------


def qsub(script: str) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "seq", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
    job_id = f"{n}.{SERVER}"
    opts = {"-o": "/dev/null", "-e": "/dev/null", "-N": "STDIN", "-q": "batch", "-t": "", "-W": ""}
    limits: dict[str, str] = {}
    for line in Path(script).read_text().splitlines():
        if line.startswith("#PBS "):
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[1] in opts:
                opts[parts[1]] = parts[2]
            elif len(parts) == 3 and parts[1] == "-l":
                for item in parts[2].split(","):
                    key, _, value = item.partition("=")
                    limits[key] = value
    now = time.time()
    depend = opts["-W"].removeprefix("depend=") if opts["-W"].startswith("depend=") else ""
    holds = "s" if depend and not dependency_met(depend) else ""
    job: dict[str, object] = {
        "state": "H" if holds else "Q",
        "holds": holds,
        "depend": depend,
        "name": opts["-N"],
        "out": opts["-o"],
        "err": opts["-e"],
        "queue": opts["-q"],
        "limits": limits,
        "script": script,
        "ctime": now,
    }
    if not opts["-t"]:
        save(job_id, job)
        start(job_id)
        print(job_id)
        return 0
    spec, _, limit = opts["-t"].partition("%")
    first, _, last = spec.partition("-")
    indices = range(int(first), int(last or first) + 1)
    subs = [f"{n}[{i}].{SERVER}" for i in indices]
    for i, sub in zip(indices, subs, strict=True):
        save(sub, {**job, "name": f"{opts['-N']}-{i}", "arrayid": i, "array": subs, "limit": int(limit or 0)})
    for sub in subs:
        start(sub)
    print(f"{n}[].{SERVER}")
    return 0


def start(job_id: str) -> None:
    subprocess.Popen(
        [sys.executable, __file__, "_run", job_id],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )


def dependency_met(depend: str) -> bool:
    """``afterany:ID`` / ``afteranyarray:ID[]``: the job, or every sub-job of the array, ended (C)
    or was purged."""
    _kind, _, target = depend.partition(":")
    target = target.split("@", 1)[0]
    if "[]" in target:
        head = target.split("[]", 1)[0]
        subs = [p.name.removesuffix(".json") for p in STATE.glob(f"{head}[[]*].{SERVER}.json")]
    else:
        subs = [target]
    return all((load(sub) or {"state": "C"}).get("state") == "C" for sub in subs)


def array_full(job: dict[str, object]) -> bool:
    """Whether the sub-job's array already runs as many sub-jobs as its slot limit allows."""
    limit = int(str(job.get("limit") or 0))
    siblings = job.get("array") or []
    assert isinstance(siblings, list)
    running = sum(1 for s in siblings if (load(s) or {}).get("state") in ("R", "E"))
    return bool(limit) and running >= limit


def run(job_id: str) -> int:
    """The job's life: queued (held while H), then run under its walltime, then C with exit_status."""
    queued_for = float(os.environ.get("TORQUE_SIM_QUEUE_SECONDS", "0"))
    while True:
        with locked():
            job = load(job_id)
            if job is None or job["state"] == "C":  # purged, or deleted while queued
                return 0
            holds = str(job.get("holds") or "")
            if "s" in holds and dependency_met(str(job["depend"])):
                holds = holds.replace("s", "")  # the server releases its own hold
                job.update(state="H" if holds else "Q", holds=holds)
                save(job_id, job)
            due = time.time() - float(str(job["ctime"])) >= queued_for
            if job["state"] == "Q" and due and not array_full(job):
                job.update(state="R", start=time.time())
                save(job_id, job)
                break
        time.sleep(0.05)
    limits = job.get("limits") or {}
    assert isinstance(limits, dict)
    walltime = seconds_of(limits["walltime"]) if "walltime" in limits else None
    started = float(str(job["start"]))
    with open(str(job["out"]), "ab") as out, open(str(job["err"]), "ab") as err:
        env = {**os.environ, "PBS_JOBID": job_id}
        if "arrayid" in job:
            env["PBS_ARRAYID"] = str(job["arrayid"])
        proc = subprocess.Popen(
            ["/bin/sh", str(job["script"])], stdout=out, stderr=err, start_new_session=True, env=env
        )
        if update(job_id, pgid=proc.pid).get("deleted"):  # qdel came between R and the pgid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=walltime)
            status = rc if rc >= 0 else 256 - rc  # killed by signal N: 256 + N, as Torque reports it
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            status = -11  # JOB_EXEC_OVERLIMIT_WT
    update(job_id, state="E")
    update(job_id, state="C", exit_status=status, walltime=time.time() - started, comp=time.time())
    return 0


# --- qstat ------------------------------------------------------------------------------------------


def attributes(job_id: str, job: dict[str, object]) -> list[tuple[str, str | list[tuple[str, str]]]]:
    """The job's attributes in Torque's order; a list value is a resource group."""
    state = str(job["state"])
    ran = "start" in job
    limits = job.get("limits") or {}
    assert isinstance(limits, dict)
    a: list[tuple[str, str | list[tuple[str, str]]]] = [
        ("Job_Name", str(job["name"])),
        ("Job_Owner", "jobwire@localhost"),
    ]
    if ran:
        wall = float(str(job.get("walltime", time.time() - float(str(job["start"])))))
        a.append(
            (
                "resources_used",
                [
                    ("cput", "00:00:00"),
                    ("energy_used", "0"),
                    ("mem", "1024kb"),
                    ("vmem", "13988kb"),
                    ("walltime", hms(wall)),
                ],
            )
        )
    a += [("job_state", state), ("queue", str(job["queue"])), ("server", SERVER), ("Checkpoint", "u")]
    a += [("ctime", str(int(float(str(job["ctime"])))))]
    a += [("Error_Path", f"localhost:{job['err']}")]
    if ran:
        a.append(("exec_host", "localhost/0"))
    a += [("Hold_Types", hold_types(job)), ("Join_Path", "n"), ("Keep_Files", "n")]
    a += [("Output_Path", f"localhost:{job['out']}"), ("Priority", "0"), ("Rerunable", "True")]
    a.append(("Resource_List", [(k, str(v)) for k, v in sorted(limits.items())] or [("nodect", "1")]))
    a.append(
        (
            "Variable_List",
            "PBS_O_QUEUE=batch,PBS_O_HOME=/root,PBS_O_LOGNAME=root,PBS_O_PATH=/usr/local/bin:/usr/bin:/bin,"
            "PBS_O_SHELL=/bin/sh,PBS_O_WORKDIR=/root,PBS_O_HOST=localhost,PBS_O_SERVER=" + SERVER,
        )
    )
    if job.get("depend"):
        a.append(("depend", f"{job['depend']}@{SERVER}"))
    a += [("euser", "jobwire"), ("egroup", "jobwire"), ("queue_type", "E")]
    if "exit_status" in job:
        a.append(("exit_status", str(job["exit_status"])))
    a += [("submit_args", str(job["script"]))]
    if ran:
        a += [("start_time", str(int(float(str(job["start"]))))), ("start_count", "1")]
    if "comp" in job:
        a.append(("comp_time", str(int(float(str(job["comp"]))))))
    a += [("job_radix", "0"), ("submit_host", "localhost"), ("request_version", "1")]
    return a


def hold_types(job: dict[str, object]) -> str:
    """The hold bits as qstat prints them: ``u`` user, ``s`` system (a dependency), ``n`` none."""
    return "".join(sorted(str(job.get("holds") or ""), key="uos".index)) or "n"


def escape(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def xml_job(job_id: str, job: dict[str, object]) -> str:
    parts = [f"<Job><Job_Id>{escape(job_id)}</Job_Id>"]
    for name, value in attributes(job_id, job):
        if isinstance(value, list):
            inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in value)
            parts.append(f"<{name}>{inner}</{name}>")
        else:
            parts.append(f"<{name}>{escape(value)}</{name}>")
    return "".join(parts) + "</Job>"


def wrapped(name: str, value: str) -> str:
    """``    name = value`` as qstat's prt_attr writes it: wrapped after commas past LINESIZE."""
    out, width = f"    {name} = ", len(name) + 7
    for i, piece in enumerate(value.split(",")):
        if i:
            out += ","
        if i and width + len(piece) >= LINESIZE:
            out += "\n\t"
            width = 9
        out += piece
        width += len(piece) + 1
    return out


def text_job(job_id: str, job: dict[str, object]) -> str:
    lines = [f"Job Id: {job_id}"]
    for name, value in attributes(job_id, job):
        if isinstance(value, list):
            lines += [wrapped(f"{name}.{k}", v) for k, v in value]
        else:
            lines.append(wrapped(name, value))
    return "\n".join(lines) + "\n"


def qstat(args: list[str]) -> int:
    xml = "-x" in args
    ids = [a for a in args if not a.startswith("-")]
    errors: list[str] = []
    found: list[tuple[str, dict[str, object]]] = []
    if not ids:
        for p in sorted(STATE.glob("*.json"), key=lambda p: p.name.split(".", 1)[0].zfill(20)):
            job_id = p.name.removesuffix(".json")
            if (job := load(job_id)) is not None:
                found.append((job_id, job))
        if xml:
            print('<?xml version="1.0"?>\n<Data>' + "".join(xml_job(i, j) for i, j in found) + "</Data>")
        else:
            print("\n".join(text_job(i, j) for i, j in found))
        return 0
    for job_id in ids:
        job = load(job_id)
        if job is None:
            errors.append(f"qstat: Unknown Job Id Error {job_id}")
        elif xml:
            print(f'<?xml version="1.0"?>\n<Data>{xml_job(job_id, job)}</Data>')
        else:
            print(text_job(job_id, job))
    for line in errors:
        print(line, file=sys.stderr)
    return UNKNOWN_JOB_ID if errors else 0


# --- qdel, qhold, qrls --------------------------------------------------------------------------------


def invalid_state(cmd: str, job_id: str, state: str) -> int:
    words = {"C": "COMPLETE", "R": "RUNNING", "E": "EXITING", "Q": "QUEUED", "H": "HELD"}
    print(
        f"{cmd}: Request invalid for state of job MSG=invalid state for job - {words[state]} {job_id}",
        file=sys.stderr,
    )
    return INVALID_STATE


def qdel(job_id: str) -> int:
    if "[]" in job_id:  # the whole array: each sub-job that has not ended
        head = job_id.split("[]", 1)[0]
        subs = [p.name.removesuffix(".json") for p in STATE.glob(f"{head}[[]*].{SERVER}.json")]
        if not subs:
            print(f"qdel: Unknown Job Id Error {job_id}", file=sys.stderr)
            return UNKNOWN_JOB_ID
        for sub in subs:
            if (load(sub) or {}).get("state") != "C":
                qdel(sub)
        return 0
    with locked():  # decided under the lock the job's runner takes to start it
        job = load(job_id)
        if job is None:
            print(f"qdel: Unknown Job Id Error {job_id}", file=sys.stderr)
            return UNKNOWN_JOB_ID
        if job["state"] == "C":
            return invalid_state("qdel", job_id, "C")
        if job["state"] in ("Q", "H"):
            job.update(state="C", comp=time.time())  # never ran: no exit_status
            save(job_id, job)
            return 0
        # running: a runner that has not recorded its process group yet kills it when it does
        job["deleted"] = True
        save(job_id, job)
        pgid = job.get("pgid")
    if isinstance(pgid, int):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    return 0


def qhold(job_id: str, release: bool) -> int:
    cmd = "qrls" if release else "qhold"
    if "[]" in job_id:  # the whole array: every sub-job's hold bits, running ones included
        head = job_id.split("[]", 1)[0]
        subs = [p.name.removesuffix(".json") for p in STATE.glob(f"{head}[[]*].{SERVER}.json")]
        if not subs:
            print(f"{cmd}: Unknown Job Id Error {job_id}", file=sys.stderr)
            return UNKNOWN_JOB_ID
        for sub in subs:
            set_user_hold(sub, not release)
        return 0
    job = load(job_id)
    if job is None:
        print(f"{cmd}: Unknown Job Id Error {job_id}", file=sys.stderr)
        return UNKNOWN_JOB_ID
    state = str(job["state"])
    if state not in ("Q", "H"):
        return invalid_state(cmd, job_id, state)
    set_user_hold(job_id, not release)
    return 0


def set_user_hold(job_id: str, on: bool) -> None:
    """Set or clear the ``u`` hold; a job waiting to run is held while any hold is set (a running or
    ended one keeps its state, as Torque's hold_job re-evaluates only a job not running)."""
    with locked():
        job = load(job_id)
        if job is None:
            return
        holds = str(job.get("holds") or "").replace("u", "") + ("u" if on else "")
        job["holds"] = holds
        if job["state"] in ("Q", "H"):
            job["state"] = "H" if holds else "Q"
        save(job_id, job)


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
    if cmd in ("qhold", "qrls"):
        return qhold(args[-1], release=cmd == "qrls")
    print(f"torque simulator: {cmd} is not simulated", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
