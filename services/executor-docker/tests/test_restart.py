"""The executor SIGKILLed with containers running, then restarted: every run found again by its
labels and followed to the end, none lost, none started twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("docker")]


def test_killed_executor_readopts_its_containers(api, stack, engine):
    t0 = datetime.now(UTC)
    lines = "for i in $(seq 1 60); do echo line $i; sleep 0.1; done"
    jobs = {
        "through": api.submit(node="dock-r", command=["sh", "-c", "echo a-start; sleep 8; echo a-end"]),
        "ends_while_down": api.submit(
            node="dock-r", command=["sh", "-c", "echo b-start; sleep 3; echo b-end; exit 5"]
        ),
        "progress": api.submit(node="dock-r", command=["jobtool", "work", "6", "0.7"]),
        "chatty": api.submit(node="dock-r", command=["sh", "-c", lines]),
    }
    for j in jobs.values():
        api.wait_state(j["id"], "running")
    api.wait_for(
        lambda: "line 3\n" in api.logs(jobs["chatty"]["id"]), 15, what="the chatty job's first lines"
    )

    # A container of a stale attempt (attempt 2 of the same job runs elsewhere): removed on restart.
    stale = engine.containers.create(
        api.IMAGE,
        ["sleep", "60"],
        labels={"jobwire.job_id": jobs["through"]["id"], "jobwire.attempt": "0", "jobwire.node": "dock-r"},
    )
    stale.start()

    stack.services["executor-dock-r"].kill()
    b = engine.containers.get(f"jobwire-{jobs['ends_while_down']['id']}-1")
    api.wait_for(
        lambda: b.reload() or b.status == "exited", 10, what="a job to end while the executor is down"
    )
    assert engine.containers.get(f"jobwire-{jobs['through']['id']}-1").status == "running"
    assert all(api.get(f"/v1/jobs/{j['id']}").json()["state"] == "running" for j in jobs.values())

    stack.start_service("executor-dock-r")
    done = {name: api.wait_state(j["id"], api.END, timeout=40) for name, j in jobs.items()}

    assert (done["through"]["state"], done["through"]["exit_code"]) == ("succeeded", 0)
    assert (done["ends_while_down"]["state"], done["ends_while_down"]["exit_code"]) == ("failed", 5)
    assert (done["progress"]["state"], [a["name"] for a in done["progress"]["artifacts"]]) == (
        "succeeded",
        ["result.txt", "sub/env.json"],
    )
    assert done["chatty"]["state"] == "succeeded"
    # Logs: every line once, in order, across the kill.
    assert api.logs(jobs["through"]["id"], "stdout") == "a-start\na-end\n"
    assert api.logs(jobs["ends_while_down"]["id"], "stdout") == "b-start\nb-end\n"
    assert api.logs(jobs["chatty"]["id"], "stdout") == "".join(f"line {i}\n" for i in range(1, 61))
    assert api.logs(jobs["progress"]["id"], "stdout") == "".join(f"step {i}\n" for i in range(1, 7))
    # None ran twice: one attempt, one `running`, one container start per job.
    for name, d in done.items():
        assert d["attempt"] == 1, name
        assert [t["state"] for t in d["transitions"]].count("running") == 1, (name, d["transitions"])
    starts = engine.api.events(
        since=t0, until=datetime.now(UTC), filters={"type": "container", "event": "start"}, decode=True
    )
    started = [e["Actor"]["Attributes"].get("jobwire.job_id") for e in starts]
    for name, j in jobs.items():
        expected = 2 if name == "through" else 1  # "through" also names the stale container
        assert started.count(j["id"]) == expected, (name, started)
    api.wait_for(
        lambda: not _exists(engine, stale.id), 10, what="the stale attempt's container to be removed"
    )
    api.wait_for(
        lambda: not engine.containers.list(all=True, sparse=True, filters={"label": "jobwire.node=dock-r"}),
        10,
        what="every finished container of dock-r to be removed",
    )
    time.sleep(0.5)


def _exists(engine, ref: str) -> bool:
    try:
        engine.containers.get(ref)
    except Exception:
        return False
    return True
