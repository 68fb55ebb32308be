"""Gang jobs on Docker nodes of one engine (issue 14): three nodes whose ranks run on the host's
network, two that publish rank 0's MASTER_PORT instead; every node shares the one shared root, so the
ranks' containers and attempt directories must be told apart by rank."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import Stack, StackConfig
from tests.support.gang import RENDEZVOUS, rank_report

from .conftest import FAST, JobApi, docker_node

pytestmark = [pytest.mark.integration, pytest.mark.backend("docker")]

HOST_NODES = [f"dgang-h{i}" for i in range(3)]
PUBLISH_NODES = [f"dgang-p{i}" for i in range(2)]


def bridge_gateway(engine: docker.DockerClient) -> str:
    """The host's address on the engine's default bridge: where a container reaches a published port.
    An engine started for the first time may list only the bridge's subnet, not its gateway: that is
    then the subnet's first address, which the engine gives its bridge."""
    config = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
    if "Gateway" in config:
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="module")
def gang_stack(
    engine: docker.DockerClient, shared_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    host = [docker_node(n, shared_root, slots=1, JOBWIRE_EXECUTOR_POOL="host") for n in HOST_NODES]
    publish = [
        docker_node(
            n,
            shared_root,
            slots=1,
            JOBWIRE_EXECUTOR_POOL="publish",
            JOBWIRE_DOCKER_GANG_NETWORK="publish",
            JOBWIRE_EXECUTOR_ADDRESS=bridge_gateway(engine),
        )
        for n in PUBLISH_NODES
    ]
    config = StackConfig(
        home=tmp_path_factory.mktemp("dgang"),
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=[*host, *publish],
        # no restart here: a lost node is noticed sooner than the other Docker modules allow
        env={**FAST, "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "10"},
    )
    s = Stack(config)
    s.start()
    yield s
    s.stop()
    for c in engine.containers.list(all=True, sparse=True, filters={"label": "jobwire.node"}):
        if (c.attrs.get("Labels") or {}).get("jobwire.node", "").startswith("dgang-"):
            with contextlib.suppress(docker.errors.NotFound):  # removed by its executor meanwhile
                c.remove(force=True)


@pytest.fixture(scope="module")
def api(gang_stack: Stack) -> Iterator[JobApi]:
    with JobApi(base_url=gang_stack.api_url, timeout=30) as client:
        want = {*HOST_NODES, *PUBLISH_NODES}
        client.wait_for(lambda: want <= client.up_nodes(), 60, what="five docker gang nodes up")
        yield client


def rank_dir(shared: Path, job: str, rank: int) -> Path:
    return shared / "jobs" / job / ("1" if rank == 0 else f"1-rank{rank}")


def gang(api: JobApi, pool: str, world: int, sleep: float, **extra: object) -> dict:
    cmd = ["python3", "-c", RENDEZVOUS, "-", str(sleep)]
    return api.submit(
        command=cmd, pool=pool, resources={"nodes": world, "walltime": 120}, expected_runtime=30, **extra
    )


def test_three_ranks_on_the_host_network_meet_at_rank_0(api: JobApi, shared_root: Path) -> None:
    job = gang(api, "host", 3, 0)
    done = api.wait_state(job["id"], api.END, timeout=90)
    assert done["state"] == "succeeded", done
    ranks = [rank_report(rank_dir(shared_root, job["id"], r) / "outputs" / f"rank-{r}") for r in range(3)]
    port = ranks[0]["env"]["MASTER_PORT"]
    for r, got in enumerate(ranks):
        assert got["seen"] == [0, 1, 2]
        env = got["env"]
        assert env["RANK"] == env["JOBWIRE_RANK"] == str(r)
        assert env["WORLD_SIZE"] == env["JOBWIRE_WORLD_SIZE"] == "3"
        assert env["MASTER_ADDR"] == env["JOBWIRE_MASTER_ADDR"] == "127.0.0.1"
        assert env["MASTER_PORT"] == env["JOBWIRE_MASTER_PORT"] == port
        assert env["JOBWIRE_HOSTS"] == "127.0.0.1,127.0.0.1,127.0.0.1"
        assert env["JOBWIRE_JOB_DIR"] == "/jobwire"  # each rank sees its own directory at one place
    for r in range(3):
        text = api.get(f"/v1/jobs/{job['id']}/logs", params={"rank": r, "stream": "stdout"}).text
        assert text == f"hello from rank {r} of 3\n"
    # every rank's outputs are the job's artifacts, rank r > 0's under rank<r>/ (none overwrites another's)
    names = sorted(a["name"] for a in api.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"])
    assert names == sorted(
        f"{'' if r == 0 else f'rank{r}/'}{f}-{r}" for r in range(3) for f in ("end", "pid", "rank")
    )
    got = api.get(f"/v1/jobs/{job['id']}/artifacts/rank2/rank-2").text
    assert got == (rank_dir(shared_root, job["id"], 2) / "outputs" / "rank-2").read_text()


def test_killing_one_ranks_container_stops_the_others_and_fails_the_job(
    api: JobApi, engine: docker.DockerClient, shared_root: Path
) -> None:
    job = gang(api, "host", 3, 120)
    api.wait_for(
        lambda: all(
            (rank_dir(shared_root, job["id"], r) / "outputs" / f"rank-{r}").exists() for r in range(3)
        ),
        90,
        what="the 3 ranks to meet",
    )
    api.wait_state(job["id"], "running")
    names = [f"jobwire-{job['id']}-1", f"jobwire-{job['id']}-1-rank1", f"jobwire-{job['id']}-1-rank2"]
    engine.containers.get(names[1]).kill()  # SIGKILL: rank 1 exits 137
    done = api.wait_state(job["id"], api.END, timeout=60)
    assert done["state"] == "failed", done
    assert done["reason"].startswith("rank 1 on dgang-h"), done["reason"]
    assert "(exit code 137)" in done["reason"] and "the 2 other ranks were stopped" in done["reason"]

    def stopped() -> bool:
        for name in (names[0], names[2]):
            try:
                if engine.containers.get(name).status == "running":
                    return False
            except docker.errors.NotFound:
                pass
        return True

    api.wait_for(stopped, 40, what="ranks 0 and 2's containers to stop")
    assert not any((rank_dir(shared_root, job["id"], r) / "outputs" / f"end-{r}").exists() for r in range(3))


def test_two_ranks_meet_through_rank_0s_published_port(
    api: JobApi, engine: docker.DockerClient, shared_root: Path
) -> None:
    """Nodes that keep the containers' own network: rank 0 listens on every address of its container,
    and rank 1 reaches it at its node's address, where MASTER_PORT is published."""
    job = gang(api, "publish", 2, 0, env={"BIND": "0.0.0.0"})
    done = api.wait_state(job["id"], api.END, timeout=90)
    assert done["state"] == "succeeded", done
    gateway = bridge_gateway(engine)
    for r in range(2):
        got = rank_report(rank_dir(shared_root, job["id"], r) / "outputs" / f"rank-{r}")
        assert got["seen"] == [0, 1]
        assert got["env"]["MASTER_ADDR"] == gateway


def test_a_ranks_node_lost_stops_the_others_and_loses_the_job(
    api: JobApi, engine: docker.DockerClient, gang_stack: Stack, shared_root: Path
) -> None:
    """Last in this module: it kills one of the stack's executors for good."""
    job = gang(api, "host", 3, 120)
    api.wait_for(
        lambda: all(
            (rank_dir(shared_root, job["id"], r) / "outputs" / f"rank-{r}").exists() for r in range(3)
        ),
        90,
        what="the 3 ranks to meet",
    )
    running = api.wait_state(job["id"], "running")
    dispatched = next(t["reason"] for t in running["transitions"] if t["state"] == "starting")
    order = dispatched.split(" to ", 1)[1].split(", ")
    gang_stack.services[f"executor-{order[2]}"].kill()  # rank 2's node stops answering
    done = api.wait_state(job["id"], {"lost", "failed", "succeeded"}, timeout=60)
    assert done["state"] == "lost", done
    assert done["reason"] == f"rank 2: node {order[2]} stopped answering; the other ranks were stopped"

    def stopped() -> bool:
        for name in (f"jobwire-{job['id']}-1", f"jobwire-{job['id']}-1-rank1"):
            try:
                if engine.containers.get(name).status == "running":
                    return False
            except docker.errors.NotFound:
                pass
        return True

    api.wait_for(stopped, 40, what="ranks 0 and 1's containers to stop")
