"""Arrays on the real SLURM 22.05 and SGE 8.1.9 as ONE native array job (issue 14): the tasks of
an array dispatched together to an HPC node become ``sbatch --array=0-19%5`` / ``qsub -t 1-20 -tc 5``;
each task still reports its own state, exit code and logs and sees its own JOBWIRE_ARRAY_INDEX."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration]

#: node, batch system, the native task variable, the first native task id, the id separator
KINDS = {
    "slurm": ("hpc-slurm", "SLURM_ARRAY_TASK_ID", 0, "_"),
    "sge": ("hpc-sge", "SGE_TASK_ID", 1, "."),
}
PARAMS = [pytest.param(k, marks=pytest.mark.backend(k), id=k) for k in KINDS]


def array(api: Any, array_id: str, **params: Any) -> dict[str, Any]:
    r = api.get(f"/v1/arrays/{array_id}", params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return dict(r.json())


def most_at_once(lines: list[str]) -> int:
    """The most tasks between their ``s INDEX NS`` and ``e INDEX NS`` lines at any moment (an end
    before a start at the same nanosecond)."""
    marks = sorted((int(ns), -1 if kind == "e" else 1) for kind, _, ns in (ln.split() for ln in lines))
    most = now = 0
    for _, step in marks:
        now += step
        most = max(most, now)
    return most


def submit_array(api: Any, node: str, script: str, count: int, parallelism: int) -> str:
    r = api.post(
        "/v1/jobs",
        json={
            "backend": "hpc",
            "node": node,
            "script": script,
            "resources": {"cpus": 1, "memory": "64M", "walltime": 300},
            "expected_runtime": 3,
            "array": {"count": count, "parallelism": parallelism},
        },
    )
    assert r.status_code in (201, 202), r.text
    return str(r.json()["id"])


def task_ids(api: Any, array_id: str, count: int) -> dict[int, str]:
    """index -> task job id, once every task is made."""

    def made() -> dict[int, str] | None:
        tasks = array(api, array_id)["tasks"]
        ids = {t["index"]: t["job_id"] for t in tasks if t["job_id"]}
        return ids if len(ids) == count else None

    return dict(api.wait_for(made, 60, what=f"{count} tasks made"))


def native_ids(stack: Any, node: str, ids: dict[int, str]) -> dict[int, str]:
    """index -> the batch id the executor recorded for the task's first attempt."""

    def read() -> dict[int, str] | None:
        out = {}
        for index, job_id in ids.items():
            path = stack.home / "executors" / node / ".executor" / "jobs" / job_id / "1" / "batch_id"
            if not path.exists():
                return None
            out[index] = path.read_text().strip()
        return out

    return dict(stack_wait(read, "every task's batch id"))


def stack_wait(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kind", PARAMS)
def test_an_array_of_20_with_parallelism_5_is_one_native_job(
    kind, api, stack, slurm_cluster, sge_cell, tmp_path: Path
):
    node, variable, first, sep = KINDS[kind]
    trace = tmp_path / "trace"
    trace.touch()
    trace.chmod(0o666)
    stamp = f'echo "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N)" >> {trace}'
    script = (
        f'echo "index=$JOBWIRE_ARRAY_INDEX native=${variable} count=$JOBWIRE_ARRAY_COUNT"\n'
        f"set -- s; {stamp}\nsleep 2\nset -- e; {stamp}\n"
        'echo "err-$JOBWIRE_ARRAY_INDEX" >&2\n'
        '[ "$JOBWIRE_ARRAY_INDEX" = 7 ] && exit 3\nexit 0\n'
    )
    aid = submit_array(api, node, script, 20, 5)
    ids = task_ids(api, aid, 20)
    natives = native_ids(stack, node, ids)
    jobs = {n.split(sep, 1)[0] for n in natives.values()}
    assert len(jobs) == 1, natives  # one native job for the whole array
    [job] = jobs
    assert natives == {i: f"{job}{sep}{first + i}" for i in range(20)}
    waiting: set[str] = set()

    def done() -> bool:
        view = array(api, aid)
        waiting.update(t["reason"] or "" for t in view["tasks"] if t["state"] == "starting")
        return bool(view["done"])

    api.wait_for(done, 240, what="the array to end")
    view = array(api, aid)
    assert view["counts"]["succeeded"] == 19 and view["counts"]["failed"] == 1, view["counts"]
    by_index = {t["index"]: t for t in view["tasks"]}
    assert (by_index[7]["state"], by_index[7]["exit_code"]) == ("failed", 3)
    for i, job_id in ids.items():
        out = api.logs(job_id, "stdout")
        assert out == f"index={i} native={first + i} count=20\n", (i, out)
        assert api.logs(job_id, "stderr") == f"err-{i}\n"
        assert by_index[i]["node"] == node
    lines = trace.read_text().splitlines()
    assert len(lines) == 40
    assert most_at_once(lines) <= 5, lines
    if kind == "slurm":
        acct = slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", job, "-o", "JobID,State,ExitCode")
        rows = dict(line.split("|", 1) for line in acct.stdout.split())
        assert set(rows) == {f"{job}_{i}" for i in range(20)}, acct.stdout
        assert rows[f"{job}_7"] == "FAILED|3:0" and rows[f"{job}_0"] == "COMPLETED|0:0"
        # the batch system held back the tasks over the limit, and the tasks said why
        assert any("JobArrayTaskLimit" in w for w in waiting), waiting
    else:
        acct = sge_cell.run("qacct", "-j", job)
        tasks = sorted(int(t) for t in re.findall(r"^taskid\s+(\d+)", acct.stdout, re.M))
        assert tasks == list(range(1, 21)), acct.stdout[-2000:]


@pytest.mark.parametrize("kind", PARAMS)
def test_cancel_one_native_task_then_the_whole_array(
    kind, api, stack, slurm_cluster, sge_cell, count_log: Path
):
    """On the counting nodes (every squeue/scancel, qstat/qdel logged): one task's cancel kills only
    that native task, the array's cancel kills the native job in one command, and every list call
    while the array runs is one call for all its tasks."""
    _, variable, _, sep = KINDS[kind]
    node = f"count-{kind}"
    lister, killer = ("squeue", "scancel") if kind == "slurm" else ("qstat", "qdel")
    before = len(count_log.read_text().splitlines()) if count_log.exists() else 0
    aid = submit_array(api, node, f'echo "task ${variable}"\nsleep 120\n', 6, 2)
    ids = task_ids(api, aid, 6)
    natives = native_ids(stack, node, ids)
    [job] = {n.split(sep, 1)[0] for n in natives.values()}

    def calls(name: str) -> list[str]:
        return [c for c in count_log.read_text().splitlines()[before:] if c.startswith(name + " ")]

    def running() -> list[int] | None:
        view = array(api, aid)
        up = [t["index"] for t in view["tasks"] if t["state"] == "running"]
        return up if len(up) == 2 else None

    one, other = api.wait_for(running, 90, what="two tasks running")
    r = api.post(f"/v1/jobs/{ids[one]}/cancel")
    assert r.status_code in (200, 202), r.text
    assert api.wait_state(ids[one], "cancelled")["state"] == "cancelled"
    assert api.job(ids[other])["state"] == "running"  # the other task runs on
    if kind == "slurm":

        def cancelled_in_slurm() -> bool:
            out = slurm_cluster.run("sacct", "-n", "-X", "-P", "-j", natives[one], "-o", "State").stdout
            return out.strip().startswith("CANCELLED")

        api.wait_for(cancelled_in_slurm, 30, what="SLURM to record the task's cancel")
    task = natives[one].split(sep, 1)[1]
    task_kill = f"scancel {natives[one]}" if kind == "slurm" else f"qdel {job} -t {task}"
    assert calls(killer)[:1] == [task_kill], calls(killer)
    kills_before_array_cancel = len(calls(killer))
    r = api.post(f"/v1/arrays/{aid}/cancel")
    assert r.status_code in (200, 202), r.text
    api.wait_for(lambda: array(api, aid)["done"], 90, what="the array to end")
    view = array(api, aid)
    assert view["counts"]["cancelled"] == 6, view["counts"]
    # the rest of the array: one kill of the native job, not one per task
    assert calls(killer)[kills_before_array_cancel:] == [f"{killer} {job}"], calls(killer)
    if kind == "slurm":  # every list names all the tasks followed, in one call
        assert all(c.count(",") + 1 in range(1, 7) for c in calls(lister))
        assert max(c.count(",") + 1 for c in calls(lister)) == 6

    def left() -> str:
        if kind == "slurm":
            return slurm_cluster.run("squeue", "-h", "-r", "-t", "PD,R,CG", "-j", job, "-o", "%i %T").stdout
        out = sge_cell.run("qstat", "-u", "*", "-g", "d").stdout
        return "\n".join(line for line in out.splitlines() if line.split()[:1] == [job])

    api.wait_for(lambda: not left().strip(), 60, what=f"no task of {job} left in the batch system")


@pytest.mark.parametrize("kind", PARAMS)
def test_hold_and_release_of_the_array_are_one_command_each(kind, api, stack, count_log: Path):
    """On the counting nodes: the array's hold reaches the executor as one request per waiting task
    and goes out as ONE ``scontrol hold J`` / ``qhold J`` (the running tasks run on, not held), the
    waiting tasks show held and do not start; the release is ONE ``scontrol release J`` / ``qrls J``."""
    _, variable, _, sep = KINDS[kind]
    node = f"count-{kind}"
    hold, release = ("scontrol hold", "scontrol release") if kind == "slurm" else ("qhold", "qrls")
    before = len(count_log.read_text().splitlines()) if count_log.exists() else 0
    aid = submit_array(api, node, f'echo "task ${variable}"\nsleep 120\n', 6, 2)
    ids = task_ids(api, aid, 6)
    natives = native_ids(stack, node, ids)
    [job] = {n.split(sep, 1)[0] for n in natives.values()}

    def calls(name: str) -> list[str]:
        return [c for c in count_log.read_text().splitlines()[before:] if c.startswith(name + " ")]

    def states() -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for t in array(api, aid)["tasks"]:
            out.setdefault(t["state"], []).append(t["index"])
        return out

    def exactly(state: str, n: int) -> Any:
        def check() -> list[int] | None:
            got = states().get(state, [])
            return got if len(got) == n else None

        return check

    up = api.wait_for(exactly("running", 2), 90, what="two tasks running")
    r = api.post(f"/v1/arrays/{aid}/hold")
    assert r.status_code in (200, 202), r.text
    held = api.wait_for(exactly("held", 4), 60, what="the four waiting tasks held")
    assert sorted(held + up) == list(range(6))
    assert calls(hold) == [f"{hold} {job}"], calls(hold)
    assert sorted(states().get("running", [])) == sorted(up)  # the running ones run on
    r = api.post(f"/v1/arrays/{aid}/release")
    assert r.status_code in (200, 202), r.text
    api.wait_for(lambda: not states().get("held"), 60, what="no task held")
    assert calls(release) == [f"{release} {job}"], calls(release)
    r = api.post(f"/v1/arrays/{aid}/cancel")
    assert r.status_code in (200, 202), r.text
    api.wait_for(lambda: array(api, aid)["done"], 90, what="the array to end")


@pytest.mark.parametrize("kind", PARAMS)
def test_a_restarted_executor_readopts_every_native_task(kind, api, stack):
    """Never lose a job: the executor is SIGKILLed while the native array runs and waits; after its
    restart every task is followed again from its directory and ends once, with its own output."""
    node, variable, first, _ = KINDS[kind]
    aid = submit_array(api, node, f'echo "task ${variable}"\nsleep 3\n', 6, 2)
    ids = task_ids(api, aid, 6)
    native_ids(stack, node, ids)
    api.wait_for(lambda: any(t["state"] == "running" for t in array(api, aid)["tasks"]), 90, what="a task up")
    service = f"executor-{node}"
    stack.services[service].kill()
    time.sleep(1)
    stack.start_service(service)
    api.wait_for(lambda: array(api, aid)["done"], 120, what="the array to end")
    view = array(api, aid)
    assert view["counts"]["succeeded"] == 6, view["counts"]
    for i, job_id in ids.items():
        assert api.logs(job_id, "stdout") == f"task {first + i}\n"
        assert api.job(job_id)["attempt"] == 1  # followed again, not run again


@pytest.mark.parametrize("kind", PARAMS)
def test_a_retried_task_waits_for_its_arrays_native_job(kind, api, stack, tmp_path: Path):
    """A task retried while its native job still runs becomes a second native job that depends on
    the first (``--dependency=afterany:J`` / ``-hold_jid J``): the array's parallelism holds across
    both, and the retry succeeds as attempt 2."""
    node, _, _, sep = KINDS[kind]
    trace = tmp_path / "trace"
    trace.touch()
    trace.chmod(0o666)
    mark = tmp_path / "failed-once"
    stamp = f'echo "$1 $JOBWIRE_ARRAY_INDEX $(date +%s%N)" >> {trace}'
    script = (
        f"set -- s; {stamp}\n"
        f'if [ "$JOBWIRE_ARRAY_INDEX" = 0 ] && [ ! -e {mark} ]; then\n'
        f"touch {mark}; set -- e; {stamp}; exit 1\nfi\n"
        f"sleep 2\nset -- e; {stamp}\n"
    )
    r = api.post(
        "/v1/jobs",
        json={
            "backend": "hpc",
            "node": node,
            "script": script,
            "resources": {"cpus": 1, "memory": "64M", "walltime": 300},
            "expected_runtime": 3,
            "array": {"count": 3, "parallelism": 1},
            "retry": {"attempts": 2, "on": ["failed"]},
        },
    )
    assert r.status_code in (201, 202), r.text
    aid = r.json()["id"]
    ids = task_ids(api, aid, 3)
    api.wait_for(lambda: array(api, aid)["done"], 120, what="the array to end")
    view = array(api, aid)
    assert view["counts"]["succeeded"] == 3, view
    assert api.job(ids[0])["attempt"] == 2
    jobs = stack.home / "executors" / node / ".executor" / "jobs"
    first = (jobs / ids[1] / "1" / "batch_id").read_text().split(sep)[0]
    retry = (jobs / ids[0] / "2" / "batch_id").read_text().split(sep)[0]
    assert retry != first  # a native job of its own
    lines = trace.read_text().splitlines()
    assert len(lines) == 8 and most_at_once(lines) == 1, lines
