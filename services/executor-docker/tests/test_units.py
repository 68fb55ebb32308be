"""The pure parts: timestamps, the crash-safe log index, the container plan."""

from __future__ import annotations

import pytest

from jobwire.contracts.v1 import RunJob, codec
from jobwire.execution import StartRefused
from jobwire.execution.attempt import AttemptDir
from jobwire.executor_docker.container import plan
from jobwire.executor_docker.logs import LogFile, parse_ts

pytestmark = pytest.mark.unit


def test_engine_timestamps_to_nanoseconds():
    assert parse_ts(b"2024-05-01T12:00:00.000000001Z") == 1714564800_000000001
    assert parse_ts(b"2024-05-01T12:00:00.5Z") == 1714564800_500000000  # trailing zeros trimmed
    assert parse_ts(b"2024-05-01T12:00:00Z") == 1714564800_000000000
    assert parse_ts(b"garbage") is None


def test_log_index_cuts_data_written_after_the_last_entry(tmp_path):
    f = LogFile(str(tmp_path / "stdout"), str(tmp_path / "stdout.idx"))
    f.append(b"one\n", 10)
    f.append(b"two\n", 20)
    # A crash between the data write and its index entry, and a torn index line.
    with open(tmp_path / "stdout", "ab") as out:
        out.write(b"thr")
    with open(tmp_path / "stdout.idx", "ab") as idx:
        idx.write(b"11 3")
    again = LogFile(str(tmp_path / "stdout"), str(tmp_path / "stdout.idx"))
    assert (again.size, again.last_ts) == (8, 20)
    assert (tmp_path / "stdout").read_bytes() == b"one\ntwo\n"


def run_of(spec: dict) -> RunJob:
    return codec.decode(
        codec.encode({"type": "run", "job_id": "j1", "attempt": 2, "node": "n", "spec": spec}), RunJob
    )


def test_plan_limits_env_labels_and_gpus():
    run = run_of(
        {
            "command": ["python3", "train.py"],
            "env": {"A": "1"},
            "resources": {"cpus": 1.5, "memory": "1G"},
            "docker": {"ports": [8888, {"container": 53, "protocol": "udp", "host": 5353}], "shm_size": "1G"},
        }
    )
    d = AttemptDir.of("/s", "j1", 2)
    p = plan(run, d, node="n", image="img", binds=[], gpu_ids=["1"], init=True)
    c = p.create
    assert c["name"] == "jobwire-j1-2" and "entrypoint" not in c and "working_dir" not in c
    assert c["command"] == ["python3", "train.py"]
    assert c["nano_cpus"] == 1_500_000_000 and c["mem_limit"] == c["memswap_limit"] == 1 << 30
    assert c["shm_size"] == 1 << 30
    assert c["ports"] == {"8888/tcp": None, "53/udp": 5353}
    assert c["labels"] == {
        "jobwire.job_id": "j1",
        "jobwire.attempt": "2",
        "jobwire.node": "n",
        "jobwire.gpus": "1",
        "jobwire.rank": "0",
    }
    assert (
        c["environment"]["A"] == "1" and c["environment"]["JOBWIRE_PROGRESS_FILE"] == "/jobwire/progress.json"
    )
    # the job's directory alone: the logs and run.json (its env) are in /s/.executor, never mounted
    assert c["volumes"] == ["/s/jobs/j1/2:/jobwire:rw"]
    [req] = c["device_requests"]
    assert (req["DeviceIDs"], req["Capabilities"], req["Count"]) == (["1"], [["gpu"]], 0)


def test_gpu_ids_another_job_holds_are_refused():
    """Placement counts how many GPUs, not which: naming one held by a running job must not share it."""
    from jobwire.execution import StartRefused
    from jobwire.execution.gpus import GpuAllocator
    from jobwire.executor_docker.executor import DockerExecutor

    ex = DockerExecutor.__new__(DockerExecutor)
    ex._gpu_ids, ex._gpus = ["0", "1", "2", "3"], GpuAllocator()
    ex._gpus.hold(("other", 1), ["1", "2"])  # the node's one allocator: a running job holds 1 and 2
    free = run_of({"command": ["x"], "resources": {"gpus": 2}, "docker": {"gpu_ids": ["0", "3"]}})
    assert ex._allocate_gpus(free) == ["0", "3"]
    held = run_of({"command": ["x"], "resources": {"gpus": 2}, "docker": {"gpu_ids": ["0", "2"]}})
    with pytest.raises(StartRefused, match=r"docker\.gpu_ids 2 are held by another job"):
        ex._allocate_gpus(held)
    assert ex._allocate_gpus(run_of({"command": ["x"], "resources": {"gpus": 2}})) == ["0", "3"]


def test_log_file_keeps_its_limit_then_one_marker_and_drops_the_rest(tmp_path):
    f = LogFile(str(tmp_path / "stdout"), str(tmp_path / "stdout.idx"), limit=10)
    f.append(b"12345678", 10)
    f.append(b"abcdef", 20)
    f.append(b"more", 30)
    marker = b"\n[jobwire: stdout truncated at 10 bytes; the rest was discarded]\n"
    assert (tmp_path / "stdout").read_bytes() == b"12345678ab" + marker
    assert f.size == 10 + len(marker) and f.last_ts == 30
    again = LogFile(str(tmp_path / "stdout"), str(tmp_path / "stdout.idx"), limit=10)
    again.append(b"after a restart", 40)
    assert again.capped and (tmp_path / "stdout").read_bytes() == b"12345678ab" + marker


def gang_run(rank: int, docker: dict | None = None) -> RunJob:
    gang = {"rank": rank, "world_size": 3, "master_addr": "10.0.0.1", "master_port": 29611}
    raw = {
        "type": "run",
        "job_id": "j1",
        "attempt": 2,
        "node": "n",
        "gang": {**gang, "hosts": ["10.0.0.1"] * 3},
    }
    spec = {"command": ["true"], **({"docker": docker} if docker else {})}
    return codec.decode(codec.encode({**raw, "spec": spec}), RunJob)


def test_a_gang_rank_is_named_by_its_rank_and_runs_on_the_host_network():
    for rank, name in ((0, "jobwire-j1-2"), (2, "jobwire-j1-2-rank2")):
        d = AttemptDir.of("/s", "j1", 2, rank)
        c = plan(
            gang_run(rank, {"ports": [8888]}), d, node="n", image="i", binds=[], gpu_ids=[], init=True
        ).create
        assert c["name"] == name and c["labels"]["jobwire.rank"] == str(rank)
        assert c["volumes"][0] == f"{d.path}:/jobwire:rw" and d.path.endswith(
            name.removeprefix("jobwire-j1-")
        )
        assert c["network_mode"] == "host" and "ports" not in c and "network" not in c
        env = c["environment"]
        assert (env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"], env["MASTER_PORT"]) == (
            str(rank),
            "3",
            "10.0.0.1",
            "29611",
        )
    with pytest.raises(StartRefused, match="host's network"):
        plan(
            gang_run(1, {"network": "mynet"}),
            AttemptDir.of("/s", "x", 1),
            node="n",
            image="i",
            binds=[],
            gpu_ids=[],
            init=True,
        )


def test_a_gang_on_published_ports_publishes_rank_0s_master_port_only():
    def create(rank: int) -> dict:
        run = gang_run(rank, {"ports": [8888], "network": "mynet"})
        return plan(
            run,
            AttemptDir.of("/s", "x", 1),
            node="n",
            image="i",
            binds=[],
            gpu_ids=[],
            init=True,
            gang_network="publish",
        ).create

    assert create(0)["ports"] == {"8888/tcp": None, "29611/tcp": 29611} and create(0)["network"] == "mynet"
    assert create(1)["ports"] == {"8888/tcp": None} and "network_mode" not in create(1)
