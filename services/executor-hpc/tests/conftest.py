"""One jobwire stack with HPC nodes on the real SLURM and SGE test clusters (tests/fixtures).

``hpc-slurm`` and ``hpc-sge`` are plain nodes; ``count-slurm``/``count-sge`` run through bin dirs
whose squeue/sacct/scancel/scontrol and qstat/qacct/qdel/qhold/qrls log every call, so tests can
count scheduler commands per poll, per cancel and per hold.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig
from tests.fixtures.ssh import SshCluster, start_cluster, stop_cluster
from tests.support import jobapi

FAST = {
    "JOBWIRE_SCHEDULER_TICK": "0.2",
    "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "90",
    "JOBWIRE_SCHEDULER_TIMEOUT_GRACE": "5",
    "JOBWIRE_EXECUTOR_HEARTBEAT_INTERVAL": "0.5",
    "JOBWIRE_EXECUTOR_TICK_INTERVAL": "0.2",
    "JOBWIRE_EXECUTOR_KILL_GRACE": "2",
    "JOBWIRE_HPC_POLL_INTERVAL": "0.5",
    "JOBWIRE_HPC_ACCOUNTING_WAIT": "20",
    "JOBWIRE_LOG_LEVEL": "INFO",
    "JOBWIRE_GATEWAY_AUTH": "off",
}
END = jobapi.END
COUNTED = {
    "slurm": ("squeue", "sacct", "scancel", "scontrol"),
    "sge": ("qstat", "qacct", "qdel", "qhold", "qrls"),
}
PASSED = {"slurm": ("sbatch",), "sge": ("qsub",)}


def counting_bin(dest: Path, log: Path, kind: str, real_dir: str) -> Path:
    """A bin dir whose list/accounting commands append one line per call (name and argv) to ``log``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PASSED[kind]:
        os.symlink(f"{real_dir}/{name}", dest / name)
    for name in COUNTED[kind]:
        target = dest / name
        target.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexec {real_dir}/{name} "$@"\n')
        target.chmod(target.stat().st_mode | stat.S_IEXEC)
    return dest


@pytest.fixture(scope="session")
def count_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("count") / "calls.log"


#: the shared storage as users and the gateway see it; hpc-slurm maps it to ``Programs.shared``
GATEWAY_VIEW = "/gateway/view"
ECHO_ARGS = """#!/bin/sh
printf 'cwd=%s\\n' "$(pwd)"
for a in "$@"; do printf '<%s>\\n' "$a"; done
"""


@dataclass(frozen=True)
class Programs:
    root: Path  # discovered: <root>/ECHOARGS/v1.2/run
    file: Path  # configured: SHOWARGS@1
    shared: Path  # GATEWAY_VIEW as the cluster sees it


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Programs:
    """hpc-slurm's program catalog (a discovered tree and a programs file) and its mapped shared dir."""
    base = tmp_path_factory.mktemp("programs")
    base.chmod(0o755)
    run = base / "root" / "ECHOARGS" / "v1.2" / "run"
    run.parent.mkdir(parents=True)
    run.write_text(ECHO_ARGS)
    run.chmod(0o755)
    (run.parent / "description").write_text("prints its working directory and each argument\n")
    file = base / "programs.json"
    entry = {"name": "SHOWARGS", "version": "1", "command": ["/bin/sh", "-c", 'printf "%s|" "$@"', "show"]}
    file.write_text(json.dumps({"programs": [entry]}))
    (base / "shared" / "work").mkdir(parents=True)
    return Programs(base / "root", file, base / "shared")


@dataclass(frozen=True)
class RestFaults:
    """``hpc-rest-faults``: slurm-rest on a port where no slurmrestd listens until a test starts one,
    with a token file of its own that tests expire, corrupt and renew."""

    port: int
    token_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def rest_faults(tmp_path_factory: pytest.TempPathFactory) -> RestFaults:
    token_file = tmp_path_factory.mktemp("faults-secret") / "slurm.jwt"
    token_file.write_text("")
    token_file.chmod(0o600)
    return RestFaults(free_port(), token_file)


@pytest.fixture(scope="session")
def stack(
    slurm_cluster,
    sge_cell,
    count_log: Path,
    programs: Programs,
    rest_faults: RestFaults,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    count_slurm = counting_bin(tmp_path_factory.mktemp("bin"), count_log, "slurm", "/usr/bin")
    count_sge = counting_bin(tmp_path_factory.mktemp("bin"), count_log, "sge", sge_cell.bin)
    slurm = {"JOBWIRE_HPC_SCHEDULER": "slurm", **slurm_cluster.env}
    token_file = tmp_path_factory.mktemp("secret") / "slurm.jwt"
    token_file.write_text(slurm_cluster.token())
    token_file.chmod(0o600)
    rest = {
        "JOBWIRE_HPC_SCHEDULER": "slurm-rest",
        "JOBWIRE_HPC_REST_URL": slurm_cluster.rest_url,
        "JOBWIRE_HPC_REST_USER": "root",
        "JOBWIRE_HPC_REST_TOKEN_FILE": str(token_file),
    }
    sge = {"JOBWIRE_HPC_SCHEDULER": "sge", "JOBWIRE_HPC_BIN_DIR": sge_cell.bin, **sge_cell.env}
    executors = [
        ExecutorConfig(
            node="hpc-slurm",
            backend="hpc",
            slots=32,
            env={
                **slurm,
                # secrets of the executor's own, which no batch job may see (test_slurm's env test)
                "PGPASSWORD": "pg-secret-hpc",
                "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer otel-secret-hpc",
                "JOBWIRE_HPC_CLUSTER": "jwtest",
                "JOBWIRE_HPC_PROGRAMS_ROOT": str(programs.root),
                "JOBWIRE_HPC_PROGRAMS_FILE": str(programs.file),
                "JOBWIRE_HPC_PROGRAMS_INTERVAL": "1",
                "JOBWIRE_HPC_PATH_MAP": f"{GATEWAY_VIEW}={programs.shared}",
                # test_programs runs in an absolute (mapped) workdir: the node must allow its root
                "JOBWIRE_EXECUTOR_WORKDIR_ROOTS": str(programs.shared),
            },
        ),
        ExecutorConfig(
            node="count-slurm",
            backend="hpc",
            slots=400,
            env={**slurm, "JOBWIRE_HPC_BIN_DIR": str(count_slurm)},
        ),
        ExecutorConfig(node="hpc-sge", backend="hpc", slots=32, env=sge),
        ExecutorConfig(
            node="hpc-sge-pe", backend="hpc", slots=8, env={**sge, "JOBWIRE_HPC_PARALLEL_ENVIRONMENT": "smp"}
        ),
        ExecutorConfig(node="hpc-rest", backend="hpc", slots=32, env=rest),
        ExecutorConfig(
            node="count-sge",
            backend="hpc",
            slots=400,
            # accounting no more often than the list (test_scale: qacct calls <= qstat calls + 5)
            env={**sge, "JOBWIRE_HPC_BIN_DIR": str(count_sge), "JOBWIRE_HPC_ACCOUNTING_INTERVAL": "0.5"},
        ),
        # lists the queue every 2 minutes only: a job's end must come from accounting (test_sge)
        ExecutorConfig(
            node="sge-rare-list", backend="hpc", slots=4, env={**sge, "JOBWIRE_HPC_POLL_INTERVAL": "120"}
        ),
        ExecutorConfig(
            node="hpc-rest-faults",
            backend="hpc",
            slots=8,
            env={
                **rest,
                "JOBWIRE_HPC_REST_URL": rest_faults.url,
                "JOBWIRE_HPC_REST_TOKEN_FILE": str(rest_faults.token_file),
            },
        ),
    ]
    home = tmp_path_factory.mktemp("stack")
    home.chmod(0o755)
    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=executors,
        env=FAST,
    )
    s = Stack(config)
    s.start()
    yield s
    s.stop()


class JobApi(jobapi.JobApi):
    """The REST API with the few steps every test takes; jobs go to the HPC nodes by default."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"backend": "hpc"}
    STATE_TIMEOUT: ClassVar[float] = 60.0


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[JobApi]:
    with JobApi(base_url=stack.api_url, timeout=30) as client:
        client.wait_for(lambda: len(client.up_nodes()) >= 7, 30, what="seven HPC nodes up")
        yield client


@pytest.fixture(scope="session")
def batch_id(stack: Stack) -> Callable[..., str]:
    """The batch system's id of a job's attempt, as the executor recorded it."""

    def read(node: str, job_id: str, attempt: int = 1) -> str:
        path = stack.home / "executors" / node / ".executor" / "jobs" / job_id / str(attempt) / "batch_id"
        return path.read_text().strip()

    return read


@pytest.fixture(scope="module")
def login_node() -> Iterator[SshCluster]:
    c = start_cluster([])
    try:
        yield c
    finally:
        stop_cluster(c)


@pytest.fixture(scope="module")
def ssh_api(login_node: SshCluster, slurm_cluster, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("ssh-stack")
    home.chmod(0o755)
    root = login_node.base / "shared-root"
    root.mkdir()
    shutil.chown(root, login_node.user, login_node.user)
    env = {
        "JOBWIRE_HPC_SCHEDULER": "slurm",
        "JOBWIRE_HPC_TRANSPORT": "ssh",
        "JOBWIRE_HPC_SSH_HOST": f"{login_node.user}@127.0.0.1:{login_node.jump_port}",
        "JOBWIRE_HPC_SSH_KEY": str(login_node.client_key),
        "JOBWIRE_HPC_SSH_KNOWN_HOSTS": str(login_node.known_hosts),
        "JOBWIRE_HPC_COMMAND_ENV": f"SLURM_CONF={slurm_cluster.conf}",
        "JOBWIRE_EXECUTOR_ROOT": str(root),
    }
    config = StackConfig(
        home=home,
        api_port=free_port(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        executors=[ExecutorConfig(node="hpc-ssh", backend="hpc", slots=8, env=env)],
        env=FAST,
    )
    s = Stack(config)
    s.start()
    try:
        with JobApi(base_url=s.api_url, timeout=30) as client:
            client.wait_for(lambda: "hpc-ssh" in client.up_nodes(), 30, what="the SSH login node up")
            yield client, login_node, root
    finally:
        s.stop()
