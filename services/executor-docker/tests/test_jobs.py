"""Jobs through the real stack (HTTP → scheduler → Docker executor → engine), as a user sees them."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import docker
import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("docker")]


def gone(engine: docker.DockerClient, job_id: str) -> bool:
    # sparse: the engine's own list, without one inspect per container (a container removed
    # between the list and its inspect made the full list raise NotFound)
    return not engine.containers.list(all=True, sparse=True, filters={"label": f"jobwire.job_id={job_id}"})


def test_job_succeeds_with_logs_progress_outputs_env_and_mounts(api, engine, shared_root: Path):
    script = (
        "cat /data/config.txt; cat /jobwire/inputs/config.txt; "
        "touch /data/x 2>/dev/null && echo data-writable || echo data-read-only; "
        "ls -A /jobwire | tr '\\n' ' '; echo; "
        "exec jobtool work 3 0.3"
    )
    j = api.submit(
        node="dock-a",
        command=["sh", "-c", script],
        env={"GREETING": "hello docker"},
        inputs=[{"name": "data/config.txt"}],
        resources={"cpus": 0.5, "memory": "256M"},
        expected_runtime=10,
        docker={"mounts": [{"source": str(shared_root / "data"), "target": "/data", "read_only": True}]},
    )
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"], done["node"]) == ("succeeded", 0, "dock-a"), done
    out = api.logs(j["id"], "stdout")
    # /jobwire holds the job's own directories only: no logs, no executor's files
    seen = "inputs outputs work \n"
    assert out == ("threshold=3\nthreshold=3\ndata-read-only\n" + seen + "step 1\nstep 2\nstep 3\n"), out
    assert api.logs(j["id"], "stderr") == "to stderr\n"
    assert api.get(f"/v1/jobs/{j['id']}/progress").json()["progress"] == {"current": 3, "total": 3}
    names = {a["name"] for a in done["artifacts"]}
    assert names == {"result.txt", "sub/env.json"}
    assert api.get(f"/v1/jobs/{j['id']}/artifacts/result.txt").text == "done 3\n"
    env = json.loads(api.get(f"/v1/jobs/{j['id']}/artifacts/sub/env.json").text)
    assert env["GREETING"] == "hello docker"
    assert env["JOBWIRE_JOB_ID"] == j["id"] and env["JOBWIRE_ATTEMPT"] == "1"
    assert env["JOBWIRE_OUTPUT_DIR"] == "/jobwire/outputs"
    # The job's directory on the shared storage, and no container left behind.
    d = shared_root / "jobs" / j["id"] / "1"
    assert (d / "outputs" / "result.txt").read_text() == "done 3\n"
    # the logs and the executor's files beside it, never in what the container mounts
    own = shared_root / ".executor" / "jobs" / j["id"] / "1"
    assert (own / "stdout").read_text() == out and (own / "run.json").exists()
    assert json.loads((d / "progress.json").read_text()) == {"current": 3, "total": 3}
    assert done["details"]["dir"] == str(d)
    api.wait_for(lambda: gone(engine, j["id"]), 10, what="the finished container to be removed")


def test_script_and_exit_code(api):
    j = api.submit(node="dock-a", script="echo in $(pwd)\nexit 3\n", expected_runtime=5)
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"], done["reason"]) == ("failed", 3, "exit code 3")
    assert api.logs(j["id"], "stdout") == "in /jobwire/work\n"


def test_short_containers_start_before_they_end_and_delete_removes_their_directory(api, shared_root: Path):
    """running is dated by the container's StartedAt (it used to be the moment after the start
    call, later than a short container's FinishedAt); DELETE takes the directory with run.json."""
    jobs = [api.submit(node="dock-a", command=["true"], expected_runtime=5) for _ in range(3)]
    for j in jobs:
        done = api.wait_state(j["id"], api.END)
        assert done["state"] == "succeeded", done
        started, ended = (
            datetime.fromisoformat(done[k].replace("Z", "+00:00")) for k in ("started_at", "ended_at")
        )
        assert started <= ended, (done["started_at"], done["ended_at"])
    d = shared_root / "jobs" / jobs[0]["id"]
    own = shared_root / ".executor" / "jobs" / jobs[0]["id"]
    assert (d / "1").is_dir() and (own / "1" / "run.json").exists()
    assert api.delete(f"/v1/jobs/{jobs[0]['id']}").status_code in (202, 204)
    api.wait_for(lambda: not d.exists() and not own.exists(), 20, what=f"{d} and {own} to be removed")


def test_stored_inputs_are_mounted_read_only_in_the_work_directory(api, shared_root: Path):
    r = api.put("/v1/inputs/cfg/params.txt", content=b"alpha=1\n")
    assert r.status_code in (200, 201), r.text
    target = "/jobwire/work/conf/params.txt"
    script = f"cat {target}; echo x >> {target} 2>/dev/null && echo writable || echo read-only"
    j = api.submit(
        node="dock-a",
        command=["sh", "-c", script],
        inputs=[{"name": "cfg/params.txt", "path": "conf/params.txt"}],
        expected_runtime=10,
    )
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "succeeded", done
    assert api.logs(j["id"], "stdout") == "alpha=1\nread-only\n"
    placed = shared_root / "jobs" / j["id"] / "1" / "work" / "conf" / "params.txt"
    assert placed.stat().st_mode & 0o777 == 0o444

    # neither in the inputs store nor below the shared root: the job fails before it runs
    j = api.submit(node="dock-a", command=["true"], inputs=[{"name": "nowhere.txt"}], expected_runtime=5)
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "failed" and "nowhere.txt" in done["reason"], done


def test_published_port_is_reachable_and_cancel_stops_the_container(api, engine):
    j = api.submit(
        node="dock-a",
        command=["jobtool", "serve", "8000"],
        expected_runtime=60,
        docker={"ports": [8000]},
    )
    running = api.wait_state(j["id"], "running")
    address = running["ports"]["8000/tcp"]
    assert address.startswith("127.0.0.1:"), running["ports"]

    def answer() -> str | None:
        try:
            return httpx.get(f"http://{address}/", timeout=2).text
        except httpx.HTTPError:
            return None

    assert api.wait_for(answer, 15, what=f"the job's server at {address}") == f"hello from {j['id']}\n"
    assert api.post(f"/v1/jobs/{j['id']}/cancel").status_code in (200, 202)
    done = api.wait_state(j["id"], api.END, timeout=20)
    assert done["state"] == "cancelled", done
    api.wait_for(lambda: gone(engine, j["id"]), 10, what="the cancelled container to be removed")
    assert answer() is None


def test_cancel_kills_a_job_that_ignores_term_after_the_grace(api):
    j = api.submit(node="dock-a", command=["jobtool", "stubborn", "60"], expected_runtime=60)
    api.wait_state(j["id"], "running")
    api.wait_for(lambda: "started" in api.logs(j["id"]), 15, what="the job's first line")
    api.post(f"/v1/jobs/{j['id']}/cancel")
    done = api.wait_state(j["id"], api.END, timeout=30)
    assert done["state"] == "cancelled", done
    assert "TERM ignored" in api.logs(j["id"])


def test_walltime_times_the_container_out(api):
    j = api.submit(node="dock-a", command=["sleep", "60"], resources={"walltime": 1}, expected_runtime=1)
    done = api.wait_state(j["id"], api.END, timeout=30)
    assert done["state"] == "timed_out", done
    assert "timed out" in done["reason"]


def test_container_over_its_memory_limit_fails_with_oom(api):
    j = api.submit(
        node="dock-a",
        command=["jobtool", "hog", "400"],
        resources={"memory": "64M"},
        expected_runtime=10,
    )
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "failed", done
    assert done["reason"].startswith("oom"), done["reason"]
    assert done["exit_code"] == 137
    assert "allocated" not in api.logs(j["id"])


@pytest.mark.parametrize("policy", ["never", "if_not_present", "always"])
def test_missing_image_fails_with_image_not_found(api, policy):
    j = api.submit(
        node="dock-a", image="jobwire-no-such-image:0", command=["true"], docker={"pull_policy": policy}
    )
    done = api.wait_state(j["id"], api.END, timeout=60)
    assert done["state"] == "failed", done
    assert done["reason"].startswith("image_not_found"), done["reason"]
    assert "jobwire-no-such-image:0" in done["reason"]


@pytest.mark.parametrize(
    "source",
    [
        "/",
        "/var/run/docker.sock",
        "/proc",
        "/sys/fs",
        "/dev",
        "/etc",
        "relative/dir",
        "/opt/jobwire/shared/../../etc",
    ],
)
def test_forbidden_mounts_are_a_422_before_anything_runs(api, source):
    r = api.post(
        "/v1/jobs",
        json={
            "image": "x",
            "command": ["true"],
            "backend": "docker",
            "docker": {"mounts": [{"source": source, "target": "/mnt"}]},
        },
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "docker.mounts source" in r.text


def test_mounts_outside_the_allowed_roots_fail_the_job_before_it_runs(api, shared_root: Path, tmp_path: Path):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    link = shared_root / "data" / "escape"
    if not link.exists():
        os.symlink(outside, link)
    cases = {
        str(outside): "outside the directories this node allows",
        str(link): "resolves to",
        str(shared_root / "jobs"): "jobs never share",
        str(shared_root / ".executor"): "jobs never share",
        str(shared_root / "data" / "missing"): "does not exist",
    }
    ids = {}
    for source in cases:
        j = api.submit(
            node="dock-a",
            command=["cat", "/mnt/secret"],
            docker={"mounts": [{"source": source, "target": "/mnt"}]},
        )
        ids[source] = j["id"]
    for source, expected in cases.items():
        done = api.wait_state(ids[source], api.END)
        assert done["state"] == "failed", done
        assert expected in done["reason"], done["reason"]
        assert api.logs(ids[source]) == ""


def test_gpu_request_reaches_the_engine_and_a_host_without_gpus_fails_clearly(api, engine):
    """No GPU machine here: checks the device request on the created container and the clear
    failure of a host whose engine has no NVIDIA runtime (``dock-gpu`` claims two GPUs)."""
    counted = api.submit(command=["nvidia-smi"], resources={"gpus": 2}, expected_runtime=5)
    chosen = api.submit(
        node="dock-gpu",
        command=["nvidia-smi"],
        resources={"gpus": 1},
        docker={"gpu_ids": ["1"]},
        expected_runtime=5,
    )
    for j, ids in ((counted, ["0", "1"]), (chosen, ["1"])):
        done = api.wait_state(j["id"], api.END)
        assert (done["state"], done["node"]) == ("failed", "dock-gpu"), done
        assert done["reason"].startswith("gpu_unavailable"), done["reason"]
        assert "NVIDIA" in done["reason"]
        c = engine.containers.get(f"jobwire-{j['id']}-1")  # kept: dock-gpu keeps failed containers
        assert c.status == "created", "never started, so never ran on the CPU"
        assert c.attrs["HostConfig"]["DeviceRequests"] == [
            {"Driver": "", "Count": 0, "DeviceIDs": ids, "Capabilities": [["gpu"]], "Options": {}}
        ]
        c.remove(force=True)


@pytest.mark.parametrize(
    ("hints", "detail"),
    [
        ({"resources": {"gpus": 3}}, "needs 3 GPUs; the most any node of backend docker has is 2 (dock-gpu)"),
        ({"pool": "place", "resources": {"gpus": 1}}, "needs 1 GPU; no node of backend docker in pool place"),
    ],
)
def test_a_gpu_job_no_docker_node_could_run_is_refused_at_submit(api, hints, detail):
    """Issue 13: it used to be accepted and wait forever, silently."""
    r = api.post("/v1/jobs", json={"command": ["true"], "image": api.IMAGE, "backend": "docker", **hints})
    assert r.status_code == 422, r.text
    assert detail in r.json()["detail"] and r.json()["path"] == "$.resources.gpus"


def test_a_running_containers_files_are_read_through_the_gateway(api, shared_root: Path):
    """GET /v1/jobs/{id}/files on a Docker node: the attempt's directory on the shared storage
    (what the container sees at /jobwire), while the container runs; a symlink it makes is refused."""
    script = "echo 'epoch 1' > train.log\nln -s /etc/passwd escape\ntouch ready\nsleep 30\n"
    j = api.submit(node="dock-a", script=script, expected_runtime=30)  # runs in /jobwire/work
    api.wait_state(j["id"], "running")

    def files() -> dict[str, str] | None:
        r = api.get(f"/v1/jobs/{j['id']}/files")
        listed = {e["path"]: e["kind"] for e in r.json()["items"]} if r.status_code == 200 else {}
        return listed if "work/ready" in listed else None

    try:
        listed = api.wait_for(files, 30, what="the container's files to be listed")
    except AssertionError:
        seen = api.get(f"/v1/jobs/{j['id']}/files").text
        raise AssertionError(f"{api.job(j['id'])}; files: {seen}") from None
    assert listed["work/train.log"] == "file" and listed["work/escape"] == "link", listed
    log = api.get(f"/v1/jobs/{j['id']}/files/work/train.log")
    assert (log.status_code, log.text) == (200, "epoch 1\n")
    assert api.get(f"/v1/jobs/{j['id']}/files/work/escape").status_code == 400
    assert api.job(j["id"])["state"] == "running"
    assert api.post(f"/v1/jobs/{j['id']}/cancel").status_code in (200, 202)
    assert api.wait_state(j["id"], api.END)["state"] == "cancelled"
