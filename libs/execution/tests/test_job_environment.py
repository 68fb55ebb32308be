"""A job sees its spec's env, its JOBWIRE_* variables and an allowlist: never the executor's secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobState
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.integration

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"
SECRETS = {
    "JOBWIRE_NATS_PASSWORD": "nats-secret",
    "JOBWIRE_DATABASE_URL": "postgresql://jobwire:db-secret@localhost/jobwire",
    "PGPASSWORD": "pg-secret",
    "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer otel-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}
#: what /bin/sh (the wrapper) sets by itself in what it exports (not OLDPWD: the executor's directory)
SHELL_OWN = {"PWD", "SHLVL", "_"}
JOBWIRE_FOR_JOB = {
    "JOBWIRE_JOB_ID",
    "JOBWIRE_ATTEMPT",
    "JOBWIRE_JOB_DIR",
    "JOBWIRE_PROGRESS_FILE",
    "JOBWIRE_OUTPUT_DIR",
}


def start_executor(node: str, root: Path, nats_url: str, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **SECRETS,
        "LANG": "C.UTF-8",
        "LC_TIME": "C",
        "TZ": "UTC",
        "EXTRA_ONE": "kept-when-allowed",
        "JOBWIRE_NATS_URL": nats_url,
        **extra,
    }
    cmd = [sys.executable, "-m", "jobwire.execution", "--node", node, "--root", str(root)]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


async def _job_env(harness, node: str, log: Path, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    sub = await harness.bus.nc.subscribe(sj.heartbeat_subject(node))
    try:
        await sub.next_msg(timeout=15)
    finally:
        await sub.unsubscribe()
    job = await harness.run(
        node, {"command": [sys.executable, "-c", PRINT_ENV], "env": {"GREETING": "hi", "PATHLIKE": "x"}}
    )
    done = await harness.wait(job, "finished", timeout=15)
    assert done.outcome is JobState.SUCCEEDED, (await harness.text(job, "stderr"), log.read_text()[-2000:])
    env: dict[str, str] = json.loads(await harness.text(job, "stdout"))
    assert env["JOBWIRE_JOB_ID"] == job
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def test_a_job_never_sees_the_executors_secrets(harness, tmp_path):
    log = tmp_path / "executor.log"
    proc = start_executor("env-node", tmp_path / "root", harness.nats_url, log)
    try:
        env = await _job_env(harness, "env-node", log, proc)
    finally:
        _stop(proc)
    for name, value in SECRETS.items():
        assert name not in env
        assert all(value not in v for v in env.values()), name
    assert "EXTRA_ONE" not in env
    assert os.getcwd() not in env.values()  # the executor's directory (OLDPWD after the wrapper's cd)
    assert env["GREETING"] == "hi" and env["PATHLIKE"] == "x"
    assert env["PATH"] == os.environ["PATH"] and env["HOME"] == os.environ["HOME"]
    assert (env["LANG"], env["LC_TIME"], env["TZ"]) == ("C.UTF-8", "C", "UTC")
    allowed = {"PATH", "HOME", "LANG", "LC_TIME", "TZ", "USER", "LOGNAME", "TMPDIR"}
    assert set(env) >= JOBWIRE_FOR_JOB
    assert set(env) - SHELL_OWN <= allowed | JOBWIRE_FOR_JOB | {"GREETING", "PATHLIKE"}, sorted(env)


async def test_the_allowlist_is_configurable(harness, tmp_path):
    log = tmp_path / "executor.log"
    proc = start_executor(
        "env-node-2", tmp_path / "root", harness.nats_url, log, JOBWIRE_EXECUTOR_ENV_ALLOW="PATH,EXTRA_*"
    )
    try:
        env = await _job_env(harness, "env-node-2", log, proc)
    finally:
        _stop(proc)
    assert env["EXTRA_ONE"] == "kept-when-allowed"
    assert "HOME" not in env and "LANG" not in env and "PGPASSWORD" not in env
    # Python itself sets LC_CTYPE when it starts under the C locale (PEP 538): the job's own doing.
    expected = {"PATH", "EXTRA_ONE", "GREETING", "PATHLIKE"} | JOBWIRE_FOR_JOB
    assert set(env) - SHELL_OWN - {"LC_CTYPE"} == expected
