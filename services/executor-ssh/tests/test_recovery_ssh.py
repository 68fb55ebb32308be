"""A node that drops off the network, and an executor killed with -9: nothing is lost or doubled."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.backend("ssh"), pytest.mark.slow]
#: room for an executor restart before the scheduler gives its node up
# Longer than an executor's restart on 2 busy cores (the kill -9 test must not see its node given up),
# short enough for the node-drop test to see its node go down.
STACK_ENV = {"JOBWIRE_SCHEDULER_NODE_TIMEOUT": "25"}


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a late reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_executor_kill_9_and_restart_adopts_running_jobs(ssh_stack) -> None:
    api = ssh_stack.api
    long = ssh_stack.submit(
        name="long", command=["sh", "-c", "echo begin; sleep 5; echo end"], expected_runtime=5
    )
    short = ssh_stack.submit(
        name="short", command=["sh", "-c", "sleep 1; echo bye; exit 3"], expected_runtime=1
    )
    gpu = ssh_stack.submit(
        name="gpu",
        script='echo "gpus=$CUDA_VISIBLE_DEVICES"; sleep 5; echo "still $CUDA_VISIBLE_DEVICES"',
        resources={"gpus": 1},
        expected_runtime=5,
    )
    for j in (long, short, gpu):
        ssh_stack.wait_state(j["id"], "running", timeout=60)
    gpu_node = api.get(f"/v1/jobs/{gpu['id']}").json()["node"]
    assert ssh_stack.executor is not None
    ssh_stack.executor.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    ssh_stack.executor.proc.wait(10)  # type: ignore[union-attr]
    time.sleep(2)  # the short job ends while no executor watches
    ssh_stack.start_executor()

    # The re-adopted GPU job still holds its GPU in the node's inventory.
    def gpu_held() -> bool:
        return gpu["id"] in {g.get("job_id") for g in ssh_stack.nodes()[gpu_node]["gpus"]}

    ssh_stack.wait_for(gpu_held, 30, what="the adopted GPU job to hold its GPU")
    done_short = ssh_stack.wait_state(short["id"], {"succeeded", "failed"}, timeout=60)
    assert done_short["state"] == "failed" and done_short["exit_code"] == 3
    assert ssh_stack.logs(short["id"]) == "bye\n"
    done_long = ssh_stack.wait_state(long["id"], {"succeeded", "failed"}, timeout=60)
    assert done_long["state"] == "succeeded" and done_long["attempt"] == 1
    assert ssh_stack.logs(long["id"]) == "begin\nend\n"  # complete, nothing doubled
    done_gpu = ssh_stack.wait_state(gpu["id"], {"succeeded", "failed"}, timeout=60)
    assert done_gpu["state"] == "succeeded"
    first, second = ssh_stack.logs(gpu["id"]).splitlines()
    assert second == f"still {first.removeprefix('gpus=')}"


def test_node_drop_loses_the_job_reruns_it_elsewhere_and_kills_the_stale_run(ssh_stack) -> None:
    shared = ssh_stack.cluster.base / "shared"
    script = (
        'if [ "$JOBWIRE_ATTEMPT" = 1 ]; then echo $$ > "$1/stale.pid"; sleep 300; fi\n'
        'echo "attempt $JOBWIRE_ATTEMPT on $(hostname)"\n'
    )
    job = ssh_stack.submit(
        name="drop", script=script, args=[str(shared)], max_attempts=2, expected_runtime=300
    )
    running = ssh_stack.wait_state(job["id"], "running", timeout=20)
    first_node = running["node"]
    pidfile = shared / "stale.pid"
    ssh_stack.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="attempt 1's pid")
    stale = int(pidfile.read_text())
    node = ssh_stack.cluster.nodes[first_node]
    node.cut()
    try:
        ssh_stack.wait_for(
            lambda: ssh_stack.nodes()[first_node]["state"] == "down", 90, what=f"{first_node} down"
        )
        done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"}, timeout=60)
        assert done["state"] == "succeeded" and done["attempt"] == 2
        assert done["node"] != first_node
        assert "lost" in [t["state"] for t in done["transitions"]]
        assert ssh_stack.logs(job["id"]).strip().endswith(f"attempt 2 on {done['node']}")
        assert _alive(stale), "the cut-off node kept running attempt 1"
    finally:
        node.restore()
    ssh_stack.wait_for(
        lambda: ssh_stack.nodes()[first_node]["state"] == "up", 60, what=f"{first_node} up again"
    )
    ssh_stack.wait_for(lambda: not _alive(stale), 60, what="the stale attempt to be killed")
    # Its GPU-less slot is free again and the node takes work.
    again = ssh_stack.submit(command=["hostname"], node=first_node)
    assert ssh_stack.wait_state(again["id"], {"succeeded", "failed"})["state"] == "succeeded"
