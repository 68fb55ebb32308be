"""Jobs on SSH nodes behind a jump host, through the real stack: what a user submits and sees."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.backend("ssh"), pytest.mark.slow]


def test_simulated_gpus_nodes_show_their_gpus(ssh_stack) -> None:
    nodes = ssh_stack.nodes()
    a, b = nodes["gpu-a"], nodes["gpu-b"]
    assert a["backend"] == "ssh" and a["state"] == "up"
    assert a["capacity"]["gpus"] == 2 and a["capacity"]["slots"] == 4
    assert [g["name"] for g in a["gpus"]] == ["NVIDIA A100-SXM4-80GB"] * 2
    assert [g["index"] for g in b["gpus"]] == [0, 1]
    assert b["gpus"][0]["uuid"].startswith("GPU-") and b["gpus"][0]["memory_total_mib"] == 16160
    assert a["labels"]["site"] == "test"


def test_command_runs_on_a_node_behind_the_jump_host(ssh_stack) -> None:
    job = ssh_stack.submit(name="hello", command=["sh", "-c", "hostname; echo out; echo err >&2"])
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert done["exit_code"] == 0
    out = ssh_stack.logs(job["id"])
    assert out.splitlines()[0] in ssh_stack.cluster.nodes  # the node's own hostname (UTS namespace)
    assert done["node"] == out.splitlines()[0]
    assert "out" in out
    assert "err" in ssh_stack.logs(job["id"], "stderr")


def test_script_runs_in_its_own_attempt_directory(ssh_stack) -> None:
    script = (
        "#!/bin/sh\n"
        'echo "dir=$PWD"\n'
        'echo "job=$JOBWIRE_JOB_ID"\n'
        """printf '{"current": 1, "total": 1}' > "$JOBWIRE_PROGRESS_FILE"\n"""
        'echo result > "$JOBWIRE_OUTPUT_DIR/result.txt"\n'
    )
    job = ssh_stack.submit(script=script, expected_runtime=5)
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    out = ssh_stack.logs(job["id"])
    home = ssh_stack.cluster.home
    assert f"dir={home}/.jobwire/jobs/{job['id']}/1/work" in out
    assert f"job={job['id']}" in out
    arts = ssh_stack.api.get(f"/v1/jobs/{job['id']}/artifacts").json()
    assert [a["name"] for a in arts["items"]] == ["result.txt"]
    assert ssh_stack.api.get(f"/v1/jobs/{job['id']}/artifacts/result.txt").text == "result\n"
    assert ssh_stack.api.get(f"/v1/jobs/{job['id']}/progress").json()["progress"] == {
        "current": 1,
        "total": 1,
    }


def test_an_uploaded_input_is_placed_read_only_on_the_node(ssh_stack) -> None:
    r = ssh_stack.api.put("/v1/inputs/sets/train.csv", content=b"x,y\n1,2\n")
    assert r.status_code in (200, 201), r.text
    show = (
        "cat data/train.csv; ls -l data/train.csv | cut -c1-10; "
        'if [ "$(id -u)" = 0 ] || ! echo x >> data/train.csv 2>/dev/null; then echo kept; fi'
    )
    job = ssh_stack.submit(
        command=["sh", "-c", show], inputs=[{"name": "sets/train.csv", "path": "data/train.csv"}]
    )
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert ssh_stack.logs(job["id"]) == "x,y\n1,2\n-r--r--r--\nkept\n"


def test_failing_job_reports_its_exit_code(ssh_stack) -> None:
    job = ssh_stack.submit(command=["sh", "-c", "echo dying >&2; exit 7"])
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "failed"
    assert done["exit_code"] == 7
    assert "exit code 7" in done["reason"]


def test_simulated_gpus_eight_one_gpu_jobs_on_two_nodes(ssh_stack) -> None:
    """Never two jobs on one GPU; each sees its GPU in CUDA_VISIBLE_DEVICES; the rest wait queued."""
    locks = ssh_stack.cluster.base / "shared" / "gpu-locks"
    locks.mkdir(mode=0o777)
    locks.chmod(0o777)
    # mkdir is atomic: a second job on the same GPU at the same time fails loudly.
    script = (
        "#!/bin/sh\n"
        'lock="$1/$(hostname)-gpu$CUDA_VISIBLE_DEVICES"\n'
        'mkdir "$lock" || { echo "GPU $CUDA_VISIBLE_DEVICES on $(hostname) is taken" >&2; exit 9; }\n'
        'echo "host=$(hostname) gpus=$CUDA_VISIBLE_DEVICES order=$CUDA_DEVICE_ORDER"\n'
        "sleep 2\n"
        'rmdir "$lock"\n'
    )
    jobs = [
        ssh_stack.submit(
            name=f"gpu-{i}",
            script=script,
            args=[str(locks)],
            resources={"gpus": 1},
            expected_runtime=2,
        )
        for i in range(8)
    ]
    ids = [j["id"] for j in jobs]

    def four_running() -> dict[str, dict]:
        states = {i: ssh_stack.api.get(f"/v1/jobs/{i}").json() for i in ids}
        running = [j for j in states.values() if j["state"] == "running"]
        return states if len(running) == 4 else {}

    states = ssh_stack.wait_for(four_running, 20, every=0.05, what="four GPU jobs running")
    assert sum(j["state"] == "queued" for j in states.values()) == 4
    running = {i: j["node"] for i, j in states.items() if j["state"] == "running"}

    def gpus_show_their_jobs() -> bool:
        # Heartbeats carry the GPU holders; a beat or two after the jobs started they must match.
        nodes = ssh_stack.nodes()
        return all(
            {g.get("job_id") for g in nodes[name]["gpus"]} == {i for i, n in running.items() if n == name}
            for name in ("gpu-a", "gpu-b")
        )

    ssh_stack.wait_for(gpus_show_their_jobs, 1.5, what="GET /v1/nodes to show which job holds each GPU")

    seen: set[tuple[str, str]] = set()
    for i in ids:
        done = ssh_stack.wait_state(i, {"succeeded", "failed"}, timeout=40)
        assert done["state"] == "succeeded", (done, ssh_stack.logs(i, "stderr"))
        line = ssh_stack.logs(i).strip()
        fields = dict(kv.split("=", 1) for kv in line.split())
        assert fields["host"] == done["node"]
        assert fields["gpus"] in {"0", "1"} and fields["order"] == "PCI_BUS_ID"
        seen.add((fields["host"], fields["gpus"]))
    assert seen == {(n, g) for n in ("gpu-a", "gpu-b") for g in ("0", "1")}
    ssh_stack.wait_for(
        lambda: all(not g.get("job_id") for n in ssh_stack.nodes().values() for g in n["gpus"]),
        10,
        what="GPUs free again",
    )


def test_cancel_kills_the_whole_process_group(ssh_stack) -> None:
    pidfile = ssh_stack.cluster.base / "shared" / "child.pid"
    script = f"sleep 300 &\necho $! > {pidfile}\necho started\nwait\n"
    job = ssh_stack.submit(script=script, expected_runtime=300)
    ssh_stack.wait_state(job["id"], "running")
    ssh_stack.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 15, what="the child's pid")
    child = int(pidfile.read_text())
    assert _alive(child)
    r = ssh_stack.api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code in (200, 202), r.text
    done = ssh_stack.wait_state(job["id"], {"cancelled", "failed", "succeeded"})
    assert done["state"] == "cancelled"
    ssh_stack.wait_for(lambda: not _alive(child), 10, what="the child process to be gone")


def test_timeout_stops_the_job(ssh_stack) -> None:
    job = ssh_stack.submit(command=["sleep", "300"], resources={"walltime": 2})
    done = ssh_stack.wait_state(job["id"], {"timed_out", "failed", "succeeded"}, timeout=30)
    assert done["state"] == "timed_out", done


HOSTILE = [
    "$(touch /tmp/jobwire-pwned)",
    "`touch /tmp/jobwire-pwned`",
    "; touch /tmp/jobwire-pwned #",
    "' \" \\ * ? ~ {a,b} && || | > <",
    "line1\nline2",
    "-rf",
    "--",
    "ünïcødé ☃",
]


def test_hostile_strings_are_inert_data(ssh_stack) -> None:
    marker = Path("/tmp/jobwire-pwned")
    marker.unlink(missing_ok=True)
    env = {f"V{i}": s for i, s in enumerate(HOSTILE)}
    printer = (
        "import os, sys\n"
        "for a in sys.argv[1:]: print(repr(a))\n"
        "for k in sorted(os.environ):\n"
        "    k.startswith('V') and print(k, repr(os.environ[k]))\n"
    )
    job = ssh_stack.submit(
        name="x=1+y@z-.w",  # names are validated; the rest is free text
        command=["python3", "-c", printer, *HOSTILE],
        env=env,
    )
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", (done, ssh_stack.logs(job["id"], "stderr"))
    out = ssh_stack.logs(job["id"]).splitlines()
    assert out[: len(HOSTILE)] == [repr(s) for s in HOSTILE]
    assert out[len(HOSTILE) :] == [f"V{i} {s!r}" for i, s in enumerate(HOSTILE)]
    assert not marker.exists()


def _alive(pid: int) -> bool:
    """Running (zombies waiting for a late reaper count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


TRAIN = b"""import os, sys
print("file", os.path.basename(__file__))
print("args", sys.argv[1:])
print("gpus", os.environ["CUDA_VISIBLE_DEVICES"])
"""


def test_a_job_gets_only_its_env_and_the_allowlist_not_the_login_environment(ssh_stack) -> None:
    """sshd's login environment (SSH_CONNECTION, SHELL, MAIL ...) stays out; the allowlist comes
    from the node's own login (its HOME), the spec's env and JOBWIRE_* arrive."""
    job = ssh_stack.submit(
        command=["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env={"GREETING": "hi"},
    )
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", (done, ssh_stack.logs(job["id"], "stderr"))
    env = __import__("json").loads(ssh_stack.logs(job["id"]))
    assert env["JOBWIRE_JOB_ID"] == job["id"] and env["GREETING"] == "hi"
    assert env["HOME"].startswith("/") and env["PATH"] and env["USER"] == ssh_stack.cluster.user
    for name in ("SSH_CONNECTION", "SSH_CLIENT", "SHELL", "MAIL", "JOBWIRE_NATS_URL"):
        assert name not in env, name
    jobwire = {k for k in env if k.startswith("JOBWIRE_")}
    assert jobwire == {
        "JOBWIRE_JOB_ID",
        "JOBWIRE_ATTEMPT",
        "JOBWIRE_JOB_DIR",
        "JOBWIRE_PROGRESS_FILE",
        "JOBWIRE_OUTPUT_DIR",
    }
    allowed = {"PATH", "HOME", "LANG", "TZ", "USER", "LOGNAME", "TMPDIR", "PWD", "OLDPWD", "SHLVL", "_"}
    # CUDA_VISIBLE_DEVICES is the backend's own (the GPUs it gave the job: none here)
    rest = {k for k in env if not k.startswith(("JOBWIRE_", "LC_"))} - {"GREETING", "CUDA_VISIBLE_DEVICES"}
    assert rest <= allowed, sorted(rest - allowed)


def test_multipart_upload_of_a_code_file_and_a_yaml_spec(ssh_stack) -> None:
    """curl -F code=@train.py -F spec=@job.yaml, as researchers submit today."""
    spec = b"name: train\nargs: [--epochs, '2', '$(id)']\nresources: {gpus: 1}\nexpected_runtime: 5\n"
    r = ssh_stack.api.post(
        "/v1/jobs",
        files={"code": ("train.py", TRAIN, "text/x-python"), "spec": ("job.yaml", spec, "application/yaml")},
    )
    assert r.status_code in (201, 202), r.text
    job = r.json()
    assert job["code"]["filename"] == "train.py" and job["resources"]["gpus"] == 1
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", (done, ssh_stack.logs(job["id"], "stderr"))
    out = ssh_stack.logs(job["id"]).splitlines()
    assert out[:2] == ["file train.py", "args ['--epochs', '2', '$(id)']"]
    assert out[2] in ("gpus 0", "gpus 1")


def test_multipart_with_a_json_spec_field_and_top_level_fields(ssh_stack) -> None:
    r = ssh_stack.api.post(
        "/v1/jobs",
        files={"code": ("run.sh", b'echo "sh says $1"\n')},
        data={"spec": '{"args": ["hi"]}', "expected_runtime": "5", "name": "shell-job"},
    )
    assert r.status_code in (201, 202), r.text
    job = r.json()
    assert job["name"] == "shell-job" and job["expected_runtime"] == 5
    done = ssh_stack.wait_state(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert ssh_stack.logs(job["id"]) == "sh says hi\n"


@pytest.mark.parametrize(
    ("files", "data", "path"),
    [
        ({"code": ("../evil.py", b"print(1)")}, {}, "$.code.filename"),
        (
            {"code": ("ok.py", b"print(1)"), "spec": ("s.yaml", b"resources: {gpus: -1}\n")},
            {},
            "$.resources.gpus",
        ),
        ({"code": ("ok.py", b"print(1)"), "spec": ("s.yaml", b"nmae: typo\n")}, {}, "$.nmae"),
        ({"code": ("ok.py", b"print(1)"), "spec": ("s.yaml", b"a: [unclosed\n")}, {}, "$"),
        ({"code": ("ok.py", b"\xff\xfe binary")}, {}, "$.code.content"),
        ({"code": ("ok.py", b"print(1)")}, {"colour": "red"}, "$.colour"),
    ],
)
def test_multipart_errors_are_problem_json(ssh_stack, files: dict, data: dict, path: str) -> None:
    r = ssh_stack.api.post("/v1/jobs", files=files, data=data)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["path"] == path, r.json()


def test_a_workdir_stays_in_the_attempt_or_below_an_allowed_root(ssh_stack) -> None:
    """Issue 12 item 5 on an SSH node: a relative workdir is below the attempt's ``work``; an absolute
    one is refused by the node, which allows no root here, before anything runs there."""
    inside = ssh_stack.submit(command=["pwd"], workdir="sub/dir", expected_runtime=5)
    outside = ssh_stack.submit(command=["pwd"], workdir=str(ssh_stack.cluster.home), expected_runtime=5)
    done = ssh_stack.wait_state(inside["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    home = ssh_stack.cluster.home
    assert ssh_stack.logs(inside["id"]).strip() == f"{home}/.jobwire/jobs/{inside['id']}/1/work/sub/dir"
    refused = ssh_stack.wait_state(outside["id"], {"succeeded", "failed"})
    assert refused["state"] == "failed", refused
    assert f"'{home}' is not below this node's allowed roots" in refused["reason"]
    assert refused["started_at"] is None
