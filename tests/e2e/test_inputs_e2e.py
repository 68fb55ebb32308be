"""Named inputs through the real stack: upload over HTTP, a job on the local executor reads it from its
working directory, a bad reference is a 422 before anything runs, a missing input fails the job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import Stack

from .conftest import submit, wait_state

pytestmark = pytest.mark.e2e


def test_a_job_reads_an_uploaded_input(api: httpx.Client):
    content = b"learning_rate: 0.01\nepochs: 3\n"
    r = api.put("/v1/inputs/configs/train.yaml", content=content)
    assert r.status_code in (200, 201), r.text
    assert r.json()["size"] == len(content)

    job = submit(
        api,
        command=["sh", "-c", "cat conf/train.yaml; ls -l conf/train.yaml | cut -c1-10"],
        inputs=[{"name": "configs/train.yaml", "path": "conf/train.yaml"}],
        expected_runtime=5,
    )
    done = wait_state(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    logs = api.get(f"/v1/jobs/{job['id']}/logs").text
    assert logs == content.decode() + "-r--r--r--\n", logs


def test_bad_input_references_are_refused_before_anything_runs(api: httpx.Client):
    for ref in ({"name": "../x"}, {"name": "/etc/passwd"}, {"name": "ok", "path": "a/../../b"}):
        r = api.post("/v1/jobs", json={"command": ["true"], "inputs": [ref]})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["path"].startswith("$.inputs[0]"), r.json()


def test_a_missing_input_fails_the_job_with_the_reason(api: httpx.Client):
    job = submit(api, command=["true"], inputs=[{"name": "never-uploaded.csv"}], expected_runtime=5)
    done = wait_state(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "failed" and "input 'never-uploaded.csv' not found" in done["reason"], done


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or ""}
    return subprocess.run(
        [sys.executable, "-m", "jobwire.client.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_puts_lists_gets_and_removes_inputs(stack: Stack, tmp_path: Path):
    src = tmp_path / "params.json"
    src.write_bytes(b'{"lr": 0.1}\n')
    put = cli(stack, "input", "put", "cli/params.json", str(src))
    assert put.returncode == 0, put.stderr
    listed = cli(stack, "input", "ls", "--prefix", "cli/", "--json")
    assert listed.returncode == 0 and '"cli/params.json"' in listed.stdout, listed
    got = cli(stack, "input", "get", "cli/params.json", "-o", str(tmp_path / "back.json"))
    assert got.returncode == 0 and (tmp_path / "back.json").read_bytes() == src.read_bytes(), got.stderr
    bad = cli(stack, "input", "put", "../evil", str(src))
    assert bad.returncode == 2 and "input name" in bad.stderr, bad
    assert cli(stack, "input", "rm", "cli/params.json").returncode == 0
    gone = cli(stack, "input", "get", "cli/params.json", "-o", "-")
    assert gone.returncode == 2 and "404" in gone.stderr, gone
