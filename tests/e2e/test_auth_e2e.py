"""Tokens through the real stack and the real CLI: the stack's admin token file, create/list/revoke,
and a user who sees only their own jobs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import httpx
import pytest

from jobwire.contracts.v1 import JobState
from jobwire.stack.stack import Stack

from .conftest import submit

pytestmark = pytest.mark.e2e
STATES = [s.value for s in JobState]


def cli(stack: Stack, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": token or stack.token or ""}
    return subprocess.run(
        [sys.executable, "-m", "jobwire.client.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_stack_keeps_its_admin_token_0600(stack: Stack):
    assert stack.token and stack.token.startswith("jw_")
    assert stat.S_IMODE(stack.token_file.stat().st_mode) == 0o600
    assert stack.token_file.read_text().strip() == stack.token
    r = httpx.get(f"{stack.api_url}/v1/jobs")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


def test_cli_token_lifecycle_and_isolation(stack: Stack, api: httpx.Client):
    made = cli(stack, "token", "create", "alice", "--days", "30", "--scope", "jobs:submit,jobs:read")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("jw_") and "expires" in made.stderr
    listed = cli(stack, "token", "list", "--json")
    assert listed.returncode == 0 and "alice" in listed.stdout
    assert secret not in listed.stdout and (stack.token or "") not in listed.stdout

    as_alice = {"Authorization": f"Bearer {secret}"}
    # the stack runs jobs as its own account, for the owner of its token only (issue 12): alice's job
    # is refused at submit, naming the node and what to configure, never run as the stack's user
    refused = api.post("/v1/jobs", json={"command": ["true"], "expected_runtime": 5}, headers=as_alice)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    detail = refused.json()["detail"]
    assert detail.startswith("no node runs jobs of owner 'alice'") and f"({stack.owner})" in detail
    by_cli = cli(stack, "submit", "--", "true", token=secret)
    assert by_cli.returncode != 0 and "no node runs jobs of owner 'alice'" in by_cli.stderr
    theirs = submit(api, command=["true"], expected_runtime=5)  # the admin's
    assert api.get("/v1/jobs", headers=as_alice).json()["items"] == []
    assert api.get(f"/v1/jobs/{theirs['id']}", headers=as_alice).status_code == 404
    assert api.post(f"/v1/jobs/{theirs['id']}/cancel", headers=as_alice).status_code == 403  # no jobs:cancel

    as_cli = cli(stack, "ls", "--json", token=secret)
    assert as_cli.returncode == 0 and theirs["id"] not in as_cli.stdout
    counted = cli(stack, "counts", "--json", token=secret)
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout) == dict.fromkeys(STATES, 0)  # none of the admin's jobs counted
    assert sum(json.loads(cli(stack, "counts", "--json").stdout).values()) >= 1  # the admin's are

    token_id = next(t["id"] for t in api.get("/v1/tokens", params={"owner": "alice"}).json()["items"])
    assert cli(stack, "token", "revoke", token_id).returncode == 0
    denied = cli(stack, "ls", token=secret)
    assert denied.returncode == 2 and "revoked" in denied.stderr
    assert cli(stack, "token", "list", token=secret).returncode == 2
    audit = api.get("/v1/audit", params={"action": "tokens.revoke"}).json()["items"]
    assert audit and audit[0]["target"] == token_id
