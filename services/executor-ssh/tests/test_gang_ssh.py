"""Gang jobs on SSH nodes (issue 14): three sshd nodes behind the jump host, in network namespaces
joined by one more network where they reach each other. MASTER_ADDR is rank 0's node address on that
network; the nodes share one home (one root), so each rank's attempt directory is its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.processes import ServiceProcess, free_port
from jobwire.stack.stack import Stack, StackConfig
from tests.fixtures.ssh import SshCluster, join_lan, start_cluster, stop_cluster
from tests.support.gang import RENDEZVOUS, gone, met, rank_report
from tests.support.jobapi import END, submit, wait_for, wait_state

from .conftest import FAST

pytestmark = [pytest.mark.integration, pytest.mark.backend("ssh")]

NODES = ["sgang-0", "sgang-1", "sgang-2"]


@pytest.fixture(scope="module")
def lan_cluster() -> Iterator[SshCluster]:
    c = start_cluster(NODES)
    try:
        join_lan(c)
        yield c
    finally:
        stop_cluster(c)


def gang_nodes_file(c: SshCluster, path: Path) -> Path:
    config = {
        "defaults": {
            "user": c.user,
            "key": str(c.client_key),
            "known_hosts": str(c.known_hosts),
            "gpus": 0,
            "slots": 1,
            "cpus": 2,
            # a node cut off is reported down within seconds (the lost-node test)
            "down_after": 2,
            "probe_timeout": 1.5,
            "connect_timeout": 2,
            "reconnect_max": 1,
        },
        "hosts": {"jump": {"host": "127.0.0.1", "port": c.jump_port}},
        "nodes": {
            name: {"host": n.address, "jump": ["jump"], "address": n.lan_address}
            for name, n in c.nodes.items()
        },
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def api(lan_cluster: SshCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("ssh-gang")
    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=[],
        env=FAST,
    )
    stack = Stack(config)
    stack.start()
    nodes = gang_nodes_file(lan_cluster, home / "nodes.json")
    executor = ServiceProcess(
        "executor-ssh",
        [sys.executable, "-m", "jobwire.executor_ssh", "--config", str(nodes)],
        stack.base_env(),
        home / "logs" / "executor-ssh.log",
    )
    executor.start()
    client = httpx.Client(base_url=stack.api_url, timeout=30)
    try:

        def up() -> bool:
            items = client.get("/v1/nodes").json()["items"]
            return {n["name"] for n in items if n["state"] == "up"} >= set(NODES)

        wait_for(up, 60, what="three SSH gang nodes up")
        yield client
    finally:
        client.close()
        executor.stop()
        stack.stop()


def rank_dir(c: SshCluster, job: str, rank: int) -> Path:
    return c.home / ".jobwire" / "jobs" / job / ("1" if rank == 0 else f"1-rank{rank}") / "outputs"


def gang(api: httpx.Client, sleep: float) -> dict:
    cmd = ["python3", "-c", RENDEZVOUS, "-", str(sleep)]
    spec = {"backend": "ssh", "resources": {"nodes": 3, "walltime": 120}, "expected_runtime": 30}
    return submit(api, command=cmd, **spec)


def test_three_ranks_meet_at_rank_0s_node_address(api: httpx.Client, lan_cluster: SshCluster) -> None:
    job = gang(api, 0)
    done = wait_state(api, job["id"], END, timeout=90)
    assert done["state"] == "succeeded", done
    dispatched = next(t["reason"] for t in done["transitions"] if t["state"] == "starting")
    order = dispatched.split(" to ", 1)[1].split(", ")  # the nodes in rank order
    hosts = [lan_cluster.nodes[n].lan_address for n in order]
    for r in range(3):
        got = rank_report(rank_dir(lan_cluster, job["id"], r) / f"rank-{r}")
        assert got["seen"] == [0, 1, 2]
        env = got["env"]
        assert env["RANK"] == env["JOBWIRE_RANK"] == str(r)
        assert env["WORLD_SIZE"] == env["JOBWIRE_WORLD_SIZE"] == "3"
        assert env["MASTER_ADDR"] == env["JOBWIRE_MASTER_ADDR"] == hosts[0]
        assert env["JOBWIRE_HOSTS"] == ",".join(hosts)
        text = api.get(f"/v1/jobs/{job['id']}/logs", params={"rank": r, "stream": "stdout"}).text
        assert text == f"hello from rank {r} of 3\n"
    # rank 0 listened on its node's network only: its address is not any other node's
    assert len(set(hosts)) == 3
    names = sorted(a["name"] for a in api.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"])
    assert names == sorted(
        f"{'' if r == 0 else f'rank{r}/'}{f}-{r}" for r in range(3) for f in ("end", "pid", "rank")
    )


def test_killing_one_rank_stops_the_others_and_fails_the_job(
    api: httpx.Client, lan_cluster: SshCluster
) -> None:
    job = gang(api, 120)
    pids = meet(api, lan_cluster, job["id"])
    wait_state(api, job["id"], "running", timeout=30)
    os.kill(pids[2], signal.SIGKILL)  # the nodes are namespaces of this host: one pid space
    done = wait_state(api, job["id"], END, timeout=60)
    assert done["state"] == "failed", done
    assert done["reason"].startswith("rank 2 on sgang-"), done["reason"]
    assert "the 2 other ranks were stopped" in done["reason"]

    wait_for(lambda: gone(pids[0]) and gone(pids[1]), 40, what="ranks 0 and 1 to be stopped")
    assert not any((rank_dir(lan_cluster, job["id"], r) / f"end-{r}").exists() for r in range(3))


def test_a_ranks_node_cut_off_stops_the_others_and_loses_the_job(
    api: httpx.Client, lan_cluster: SshCluster
) -> None:
    job = gang(api, 120)
    pids = meet(api, lan_cluster, job["id"])
    running = wait_state(api, job["id"], "running", timeout=30)
    dispatched = next(t["reason"] for t in running["transitions"] if t["state"] == "starting")
    order = dispatched.split(" to ", 1)[1].split(", ")
    victim = lan_cluster.nodes[order[1]]
    victim.cut()  # the executor's SSH to rank 1's node fails: its probes fail, the node goes down
    try:
        done = wait_state(api, job["id"], {"lost", "failed", "succeeded"}, timeout=60)
        assert done["state"] == "lost", done
        assert done["reason"] == f"rank 1: node {order[1]} stopped answering; the other ranks were stopped"
        wait_for(lambda: gone(pids[0]) and gone(pids[2]), 40, what="ranks 0 and 2 to be stopped")
    finally:
        victim.restore()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[1], signal.SIGKILL)  # its node was away: nobody stopped it


def meet(api: httpx.Client, c: SshCluster, job: str) -> list[int]:
    """The ranks' pids once all three met."""
    dirs = [rank_dir(c, job, r) for r in range(3)]
    return list(wait_for(lambda: met(dirs), 90, what="the 3 ranks to meet"))
