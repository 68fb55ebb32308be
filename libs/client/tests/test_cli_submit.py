"""``jobwire submit`` against the stub gateway: the spec that arrives is the one the flags describe."""

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def sent(stub: Any) -> dict[str, Any]:
    (request,) = stub.requests("POST", "/v1/jobs")
    body: dict[str, Any] = json.loads(request.body)
    return body


def test_flags_and_command(stub: Any, cli: Any) -> None:
    result = cli(
        "submit", "--name", "hello", "--gpus", "1", "--cpus", "2", "--memory", "1G", "--walltime", "00:10:00",
        "--expected-time", "2m", "--env", "A=1", "--env", "B=2", "--label", "team=ml", "--backend", "docker",
        "--node", "gpu-1", "--max-attempts", "3", "--priority", "7", "--image", "python:3.11",
        "--", "python", "-c", "print('hi')",
    )  # fmt: skip
    assert result.code == 0, result.err
    body = sent(stub)
    assert body["command"] == ["python", "-c", "print('hi')"]
    assert body["name"] == "hello"
    assert body["resources"] == {"cpus": 2.0, "memory": 1024**3, "gpus": 1, "walltime": 600.0}
    assert body["expected_runtime"] == 120
    assert body["env"] == {"A": "1", "B": "2"}
    assert body["labels"] == {"team": "ml"}
    assert (body["backend"], body["node"], body["image"]) == ("docker", "gpu-1", "python:3.11")
    assert (body["max_attempts"], body["priority"]) == (3, 7)
    (request,) = stub.requests("POST", "/v1/jobs")
    assert request.headers.get("Idempotency-Key")
    job_id = next(iter(stub.jobs))
    assert f"submitted {job_id}" in result.out


def test_code_file_is_uploaded_with_its_name(stub: Any, cli: Any, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("import sys\nprint(sys.argv)\n")
    result = cli("submit", str(script), "--gpus", "1", "-q", "--", "--lr", "0.1")
    assert result.code == 0, result.err
    body = sent(stub)
    assert body["code"] == {
        "filename": "train.py",
        "content": "import sys\nprint(sys.argv)\n",
        "interpreter": None,
    }
    assert body["args"] == ["--lr", "0.1"]
    assert "command" not in body
    assert result.out.strip() == next(iter(stub.jobs))  # -q: only the id, for $(jobwire submit ...)


def test_yaml_spec(stub: Any, cli: Any, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "name: from-yaml\nscript: |\n  echo one\n  echo two\nresources:\n  memory: 512M\n"
        "labels: {team: ml}\nslurm: {partition: gpu}\n"
    )
    result = cli("submit", "-f", str(spec), "--label", "run=3", "--json")
    assert result.code == 0, result.err
    body = sent(stub)
    assert body["script"] == "echo one\necho two\n"
    assert body["resources"] == {"memory": 512 * 1024**2}
    assert body["labels"] == {"team": "ml", "run": "3"}
    assert body["slurm"] == {"partition": "gpu"}
    assert json.loads(result.out)["name"] == "from-yaml"


def test_wait_exits_with_the_jobs_exit_code(stub: Any, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    original = stub.add_job

    def finished_job(**fields: Any) -> dict[str, Any]:
        job: dict[str, Any] = original(**{**fields, "state": "failed", "exit_code": 4, "attempt": 1})
        return job

    monkeypatch.setattr(stub, "add_job", finished_job)
    result = cli("submit", "--wait", "--", "false")
    assert result.code == 4
    assert "failed" in result.out and "exit code 4" in result.out


def test_202_says_the_job_is_only_queued(stub: Any, cli: Any) -> None:
    stub.submit_status = 202
    result = cli("submit", "--", "true")
    assert result.code == 0
    assert "not confirmed" in result.out


def test_bad_input_is_reported_without_sending(stub: Any, cli: Any) -> None:
    result = cli("submit", "--memory", "lots", "--", "true")
    assert result.code == 2
    assert "not a size" in result.err
    assert "Traceback" not in result.err
    assert stub.requests("POST", "/v1/jobs") == []


@pytest.mark.parametrize("shape", ["array", "object", "lines"])
def test_batch_file_is_one_request(stub: Any, cli: Any, tmp_path: Path, shape: str) -> None:
    specs = [{"command": ["echo", str(i)], "name": f"n{i}"} for i in range(3)]
    text = {
        "array": json.dumps(specs),
        "object": json.dumps({"jobs": specs}),
        "lines": "\n".join(json.dumps(s) for s in specs) + "\n",
    }[shape]
    path = tmp_path / "many.json"
    path.write_text(text)
    result = cli("submit", "--batch", str(path), "-q")
    assert result.code == 0, result.err
    (request,) = stub.requests("POST", "/v1/jobs:batch")
    assert [s["name"] for s in json.loads(request.body)["jobs"]] == ["n0", "n1", "n2"]
    assert result.out.split() == list(stub.jobs)  # the ids, one a line, in order


def test_batch_file_with_a_bad_spec_is_refused_before_sending(stub: Any, cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"command": ["true"]}, {"command": ["true"], "cpus": 2}]))
    result = cli("submit", "--batch", str(path))
    assert result.code == 2 and "not a list of job specs" in result.err
    assert stub.requests("POST", "/v1/jobs:batch") == []


def test_array_and_retry_flags_make_the_spec_sbatch_users_expect(stub: Any, cli: Any) -> None:
    result = cli(
        "submit", "--array", "0-999%10", "--retry", "4", "--retry-backoff", "10s",
        "--retry-on", "failed,lost", "--", "sh", "-c", "echo $JOBWIRE_ARRAY_INDEX",
    )  # fmt: skip
    assert result.code == 0, result.err
    body = sent(stub)
    assert body["array"] == {"count": 1000, "parallelism": 10}
    assert body["retry"] == {"attempts": 4, "on": ["failed", "lost"], "backoff": 10.0}
    assert body["max_attempts"] == 4
    assert "1000 tasks (0-999, at most 10 at once)" in result.out


@pytest.mark.parametrize("bad", ["1,2,3", "9-3", "a-b", "0-9%"])
def test_an_array_range_sbatch_would_not_take_is_refused(stub: Any, cli: Any, bad: str) -> None:
    result = cli("submit", "--array", bad, "--", "true")
    assert result.code == 2 and "--array" in result.err
    assert not stub.requests("POST", "/v1/jobs")


def test_after_flags_make_the_dependencies_sbatch_users_expect(stub: Any, cli: Any) -> None:
    first, second, third = ("0193a000-0000-7000-8000-00000000000" + str(i) for i in range(3))
    result = cli(
        "submit", "--after", first, "--after", f"{second}:notok", "--after", f"{third}:finished",
        "--", "true",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert sent(stub)["after"] == [
        {"job": first},
        {"job": second, "when": "failed"},
        {"job": third, "when": "finished"},
    ]


def test_an_after_flag_with_an_unknown_condition_is_refused(stub: Any, cli: Any) -> None:
    result = cli("submit", "--after", "0193a000-0000-7000-8000-000000000000:sometimes", "--", "true")
    assert result.code == 2 and "JOB:succeeded|failed|finished" in result.err
    assert stub.requests("POST", "/v1/jobs") == []


def test_the_jobs_dashboard_page_is_printed_after_submit(
    stub: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where to watch it: the gateway's own /ui unless JOBWIRE_DASHBOARD_URL names where users reach it
    (or says off); never in -q or --json output, which scripts read."""
    monkeypatch.delenv("JOBWIRE_DASHBOARD_URL", raising=False)
    result = cli("submit", "--", "true")
    job_id = list(stub.jobs)[-1]
    assert result.code == 0, result.err
    assert f"dashboard: {stub.url}/ui#/jobs/{job_id}  (jobwire open {job_id})" in result.out
    monkeypatch.setenv("JOBWIRE_DASHBOARD_URL", "https://jobs.example.org/ui/")
    result = cli("submit", "--", "true")
    assert f"dashboard: https://jobs.example.org/ui#/jobs/{list(stub.jobs)[-1]}" in result.out
    assert cli("submit", "-q", "--", "true").out.strip() == list(stub.jobs)[-1]
    assert "dashboard" not in cli("submit", "--json", "--", "true").out
    monkeypatch.setenv("JOBWIRE_DASHBOARD_URL", "off")
    assert "dashboard" not in cli("submit", "--", "true").out
