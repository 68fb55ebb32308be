"""The CLI's output where scripts read it (a pipe, not a terminal), against the real stack.

Rich assumed 80 columns off a terminal and cut ids (``tok_954ef97267…``), which ``token revoke`` then
refused; every listing also answers ``--json`` and ``-o json`` alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from jobwire.stack.stack import Stack

from .conftest import submit, wait_state

pytestmark = pytest.mark.e2e


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``jobwire`` command with stdout a pipe; COLUMNS unset, as under cron or a CI runner."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update({"JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or ""})
    r = subprocess.run(
        [sys.executable, "-m", "jobwire.client.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_a_piped_token_list_keeps_whole_ids_that_revoke_accepts(stack: Stack, api: httpx.Client) -> None:
    owner = "a-rather-long-owner-name-for-the-output-test"
    cli(stack, "token", "create", owner, "--scope", "jobs:read", "--note", "to be revoked from the table")
    table = cli(stack, "token", "list", "--owner", owner).stdout
    assert "…" not in table
    rows = [line.split() for line in table.splitlines()[1:] if owner in line]
    assert len(rows) == 1, table
    token_id = rows[0][0]  # what a script does: first column of the table

    revoked = cli(stack, "token", "revoke", token_id)

    assert token_id in revoked.stdout
    listed = api.get("/v1/tokens", params={"owner": owner}).json()["items"]
    assert [t["id"] for t in listed] == [token_id] and listed[0]["revoked_at"]


def test_a_piped_job_list_keeps_whole_ids_and_names(stack: Stack, api: httpx.Client) -> None:
    name = "a-job-name-much-longer-than-the-twenty-columns-a-terminal-shows"
    job = submit(api, name=name, command=["true"], expected_runtime=5)
    wait_state(api, job["id"], "succeeded")

    out = cli(stack, "ls", "--name", name).stdout

    assert "…" not in out
    line = next(line for line in out.splitlines() if line.startswith(job["id"]))
    assert line.split()[:3] == [job["id"], name, "succeeded"]
    assert len(line) > 80


LISTINGS = [
    ["ls"],
    ["counts"],
    ["nodes"],
    ["programs"],
    ["token", "list"],
    ["input", "ls"],
]


@pytest.mark.parametrize("command", LISTINGS, ids=lambda c: " ".join(c))
def test_every_listing_answers_json_and_dash_o_json_alike(
    stack: Stack, api: httpx.Client, command: list[str]
) -> None:
    if command == ["input", "ls"]:
        api.put("/v1/inputs/configs/listed.yaml", content=b"a: 1\n")
    if command == ["ls"]:  # ended before the two listings, so both show it in the same state
        wait_state(api, submit(api, command=["true"], expected_runtime=5)["id"], "succeeded")

    long = json.loads(cli(stack, *command, "--json").stdout)
    short = json.loads(cli(stack, *command, "-o", "json").stdout)

    if command == ["nodes"]:  # heart-beat times move between the two calls
        long = [n["name"] for n in long]
        short = [n["name"] for n in short]
        assert long
    if command == ["token", "list"]:  # so does the last use of the token both calls are made with
        for token in (*long, *short):
            token.pop("last_used_at")
    assert long == short
    if command != ["programs"]:  # the local executor offers no programs
        assert long


def test_one_job_and_its_artifacts_answer_json_too(stack: Stack, api: httpx.Client) -> None:
    job = submit(api, command=["sh", "-c", "echo x > $JOBWIRE_OUTPUT_DIR/a.txt"], expected_runtime=5)
    wait_state(api, job["id"], "succeeded")

    status = json.loads(cli(stack, "status", job["id"], "-o", "json").stdout)
    listed = json.loads(cli(stack, "artifacts", job["id"], "-o", "json").stdout)

    assert status["id"] == job["id"] and status["state"] == "succeeded"
    assert listed == json.loads(cli(stack, "artifacts", job["id"], "--json").stdout)
