"""Failures become one red line and an exit status, never a traceback; the token never shows."""

import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

TOKEN = "s3cret-t0ken-value"


def test_problem_json_becomes_a_clean_message(stub: Any, cli: Any) -> None:
    result = cli("status", "01900000-0000-7000-8000-999999999999")
    assert result.code == 2
    assert "Job not found (404): no job 01900000-0000-7000-8000-999999999999" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


def test_conflict_on_cancelling_a_finished_job(stub: Any, cli: Any) -> None:
    job = stub.add_job(state="succeeded", exit_code=0)
    result = cli("cancel", job["id"])
    assert result.code == 2
    assert f"Conflict (409): job {job['id']} already succeeded" in result.err


def test_connection_refused_names_the_url(
    cli: Any, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("JOBWIRE_URL", url)
    for argv in (["ls"], ["logs", "-f", "some-job"], ["submit", "--", "true"]):
        result = cli(*argv)
        assert result.code == 3, argv
        assert f"cannot reach the jobwire gateway at {url}" in result.err
        assert "Traceback" not in result.err


def test_url_flag_wins_after_the_command(stub: Any, cli: Any, closed_port: int) -> None:
    result = cli("ls", "--url", f"http://127.0.0.1:{closed_port}")
    assert result.code == 3


def test_token_from_env_is_sent_and_never_printed(
    stub: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.token = TOKEN
    monkeypatch.setenv("JOBWIRE_TOKEN", TOKEN)
    job = stub.add_job()
    outputs = [
        cli("status", job["id"]),
        cli("status", "missing"),
        cli("ls", "--json"),
        cli("status", job["id"]),
    ]
    assert all(s.headers.get("Authorization") == f"Bearer {TOKEN}" for s in stub.seen)
    assert [r.code for r in outputs] == [0, 2, 0, 0]
    for result in outputs:
        assert TOKEN not in result.out + result.err


def test_wrong_token_is_a_401_message_without_the_token(stub: Any, cli: Any) -> None:
    stub.token = TOKEN
    result = cli("--token", "wrong-" + TOKEN, "ls")
    assert result.code == 2
    assert "Unauthorized (401)" in result.err
    assert TOKEN not in result.out + result.err


def test_token_file_is_used_only_when_private(stub: Any, cli: Any, tmp_path: Path) -> None:
    stub.token = TOKEN
    path = tmp_path / "config" / "jobwire" / "token"  # XDG_CONFIG_HOME points at tmp_path/config
    path.parent.mkdir(parents=True)
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    result = cli("ls")
    assert result.code == 2
    assert "ignoring" in result.err and "0644" in result.err
    assert TOKEN not in result.out + result.err
    os.chmod(path, 0o600)
    result = cli("ls")
    assert result.code == 0, result.err
    assert stub.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_no_token_means_no_header(stub: Any, cli: Any) -> None:
    assert cli("ls").code == 0
    assert "Authorization" not in stub.seen[-1].headers
