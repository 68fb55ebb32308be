"""The CLI's conveniences against the real stack: a job's dashboard page, shell completion, and
submitting a catalog program by name."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import Stack

from .conftest import submit

pytestmark = pytest.mark.e2e


def run_cli(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``jobwire`` command, as a user's shell runs it."""
    full = {**os.environ, "JOBWIRE_URL": stack.api_url, "JOBWIRE_TOKEN": stack.token or "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "jobwire.client.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_open_starts_the_browser_on_the_jobs_dashboard_page(
    stack: Stack, api: httpx.Client, tmp_path: Path
) -> None:
    job = submit(api, command=["true"], expected_runtime=5)
    seen = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {seen}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)

    r = run_cli(stack, "open", job["id"], env={"BROWSER": str(browser)})

    page = f"{stack.api_url}/ui#/jobs/{job['id']}"
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == page
    assert seen.read_text() == page
    assert httpx.get(f"{stack.api_url}/ui").status_code == 200


def test_open_refuses_a_job_that_does_not_exist(stack: Stack) -> None:
    r = run_cli(stack, "open", "01890000-0000-7000-8000-000000000000", "--print")
    assert r.returncode == 2 and "404" in r.stderr


def test_completion_scripts_complete_commands_and_options(stack: Stack, tmp_path: Path) -> None:
    bash = run_cli(stack, "completion", "bash")
    assert bash.returncode == 0 and "jobwire" in bash.stdout
    assert subprocess.run(["bash", "-n"], input=bash.stdout, text=True, check=False).returncode == 0
    for shell in ("zsh", "fish"):
        out = run_cli(stack, "completion", shell)
        assert out.returncode == 0 and "jobwire" in out.stdout and "_ARGCOMPLETE" in out.stdout

    def complete(line: str) -> list[str]:
        """What the shell code asks of jobwire at <TAB> (argcomplete's protocol), and its answer."""
        answer = tmp_path / "answer"
        env = {
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": "\n",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
        }
        r = run_cli(stack, env=env)  # no arguments: argcomplete reads COMP_LINE
        assert r.returncode == 0, r.stderr
        return answer.read_text().split()

    assert "submit" in complete("jobwire sub")
    assert {"requeue", "release"} <= set(complete("jobwire re"))
    assert "--program" in complete("jobwire submit --pro")
    assert complete("jobwire completion f") == ["fish"]


def test_submit_program_sends_the_program_and_its_arguments(stack: Stack) -> None:
    r = run_cli(stack, "submit", "--program", "nosuch@1.0", "--", "-deffnm", "run1")
    # no node offers it: the gateway's refusal names the program, so the spec carried it
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "nosuch" in r.stderr
