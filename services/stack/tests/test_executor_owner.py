"""``make run``'s executors serve the owner of the stack's token unless run-as is configured (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwire.stack.stack import ExecutorConfig, Stack, StackConfig

pytestmark = pytest.mark.unit


def _env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stack_env: dict[str, str] | None = None,
    **executor_env: str,
) -> dict[str, str]:
    for name in ("JOBWIRE_EXECUTOR_OWNER", "JOBWIRE_EXECUTOR_RUN_AS", "JOBWIRE_GATEWAY_AUTH"):
        monkeypatch.delenv(name, raising=False)
    config = StackConfig(
        home=tmp_path,
        owner="pat",
        nats_url="nats://127.0.0.1:1",
        env=stack_env or {},
        executors=[ExecutorConfig(node="a", env=executor_env)],
    )
    return Stack(config).make("executor-a").env


def test_a_self_executor_serves_the_tokens_owner(tmp_path, monkeypatch):
    assert _env(tmp_path, monkeypatch)["JOBWIRE_EXECUTOR_OWNER"] == "pat"
    assert _env(tmp_path, monkeypatch, JOBWIRE_EXECUTOR_RUN_AS="self")["JOBWIRE_EXECUTOR_OWNER"] == "pat"


def test_run_as_or_an_explicit_owner_is_left_alone(tmp_path, monkeypatch):
    assert "JOBWIRE_EXECUTOR_OWNER" not in _env(tmp_path, monkeypatch, JOBWIRE_EXECUTOR_RUN_AS="owner")
    assert "JOBWIRE_EXECUTOR_OWNER" not in _env(tmp_path, monkeypatch, JOBWIRE_EXECUTOR_RUN_AS="fixed:jw")
    assert _env(tmp_path, monkeypatch, JOBWIRE_EXECUTOR_OWNER="sam")["JOBWIRE_EXECUTOR_OWNER"] == "sam"


def test_with_the_gateways_auth_off_the_executor_serves_its_anonymous_owner(tmp_path, monkeypatch):
    env = _env(tmp_path, monkeypatch, {"JOBWIRE_GATEWAY_AUTH": "off"})
    assert env["JOBWIRE_EXECUTOR_OWNER"] == "anonymous"
