"""One job, four backends, one environment: the ``JOBWIRE_*`` variables and the spec's ``env`` reach a
detached process (local), an SSH node, a Docker container and a SLURM batch job alike, because the
attempt's environment is composed once (``jobwire.execution.attempt``), not per backend; and the job
finds the same files in its directory (its own only: the executor's files and logs are kept apart).

Real parts only: the SSH test bed (sshd behind a jump host), the local Docker engine and the SLURM
test cluster. Hold ``flock /tmp/jobwire-backends.lock`` when running it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig, Stack
from tests.fixtures.ssh import SshCluster, start_cluster, stop_cluster

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.backend("docker"),
    pytest.mark.backend("ssh"),
    pytest.mark.backend("slurm"),
]
NODES = {"env-local": "local", "env-ssh": "ssh", "env-docker": "docker", "env-slurm": "hpc"}
#: the executor's bookkeeping: in its own tree on every backend, never in the job's directory
BOOKKEEPING = {"run.json", "batch_id", "submitting", "state.json", "signal", "reported", "account"}
#: the most a job may find beside outputs/ and work/: the one layout keeps the wrapper's files and the
#: logs with whoever runs the wrapper, which for a batch job is the batch script in the job's directory
#: (the executor runs it for a process or a container: those jobs see nothing more)
WRAPPERS_OWN = {"batch.sh", "batch.args", "wrapper.sh", "pid", "exit_code", "stdout", "stderr"}
#: prints what a job sees; the names only for paths (they differ: a container sees /jobwire)
SCRIPT = """\
echo "dir: $(ls -A "$JOBWIRE_JOB_DIR" | tr '\\n' ' ')"
env | grep '^JOBWIRE_' | sed 's/=.*//' | sort
echo "id=$JOBWIRE_JOB_ID attempt=$JOBWIRE_ATTEMPT mine=$MINE"
test -d "$JOBWIRE_JOB_DIR" && test -d "$JOBWIRE_OUTPUT_DIR" && echo dirs-ok
echo kept > "$JOBWIRE_OUTPUT_DIR/kept.txt"
echo '{"fraction": 0.5}' > "$JOBWIRE_PROGRESS_FILE"
"""


@pytest.fixture(scope="module")
def ssh_bed() -> Iterator[SshCluster]:
    c = start_cluster(["env-ssh"])
    try:
        yield c
    finally:
        stop_cluster(c)


def ssh_nodes_file(c: SshCluster, path: Path) -> Path:
    [node] = c.nodes.values()
    config = {
        "defaults": {"user": c.user, "key": str(c.client_key), "known_hosts": str(c.known_hosts)},
        "hosts": {"jump": {"host": "127.0.0.1", "port": c.jump_port}},
        "nodes": {"env-ssh": {"host": node.address, "jump": ["jump"], "gpus": 0, "slots": 2, "cpus": 2}},
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def stack(ssh_bed: SshCluster, slurm_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("env-stack")
    home.chmod(0o755)
    shared = tmp_path_factory.mktemp("env-shared")
    executors = [
        ExecutorConfig(node="env-local", backend="local", slots=2),
        ExecutorConfig(
            node="env-ssh",
            backend="ssh",
            env={"JOBWIRE_SSH_CONFIG": str(ssh_nodes_file(ssh_bed, home / "nodes.json"))},
        ),
        ExecutorConfig(
            node="env-docker",
            backend="docker",
            slots=2,
            env={
                "JOBWIRE_DOCKER_SHARED_ROOT": str(shared),
                "JOBWIRE_DOCKER_DEFAULT_IMAGE": "debian:bookworm",
            },
        ),
        ExecutorConfig(
            node="env-slurm",
            backend="hpc",
            slots=2,
            env={"JOBWIRE_HPC_SCHEDULER": "slurm", "JOBWIRE_HPC_POLL_INTERVAL": "0.5", **slurm_cluster.env},
        ),
    ]
    s = make_stack(
        home, executors, env={"JOBWIRE_GATEWAY_AUTH": "off", "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "60"}
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:

        def up() -> bool:
            items = client.get("/v1/nodes").json()["items"]
            return {n["name"] for n in items if n["state"] == "up"} >= set(NODES)

        wait_for(up, 60, what=f"nodes {sorted(NODES)} up")
        yield client


def test_every_backend_gives_the_job_the_same_environment(api: httpx.Client) -> None:
    jobs = {
        node: submit(
            api, node=node, command=["/bin/sh", "-c", SCRIPT], env={"MINE": "from-spec"}, expected_runtime=5
        )
        for node in NODES
    }
    seen: dict[str, str] = {}
    dirs: dict[str, str] = {}
    for node, job in jobs.items():
        done = wait_state(api, job["id"], {"succeeded", "failed", "cancelled", "timed_out"}, timeout=90)
        assert (done["state"], done["node"]) == ("succeeded", node), done
        out = api.get(f"/v1/jobs/{job['id']}/logs", params={"stream": "stdout"}).text
        assert f"id={job['id']} attempt=1 mine=from-spec" in out, (node, out)
        artifacts = api.get(f"/v1/jobs/{job['id']}/artifacts").json()["items"]
        assert [a["name"] for a in artifacts] == ["kept.txt"], (node, artifacts)
        listing, _, rest = out.partition("\n")
        dirs[node] = listing
        seen[node] = re.sub(r"id=\S+", "id=JOB", rest)
    assert dirs["env-local"] == "dir: outputs work ", dirs
    for node, listing in dirs.items():
        names = set(listing.removeprefix("dir: ").split())
        assert {"outputs", "work"} <= names, f"{node}'s job misses its directories: {dirs}"
        assert not names & BOOKKEEPING, f"{node}'s job sees the executor's files: {dirs}"
        assert names - {"outputs", "work"} <= WRAPPERS_OWN, f"{node}'s job sees other files: {dirs}"
    first = seen["env-local"]
    assert "JOBWIRE_OUTPUT_DIR" in first and "dirs-ok" in first, first
    for node, out in seen.items():
        assert out == first, f"{node} gives the job another environment:\n{out}\nthan env-local:\n{first}"
