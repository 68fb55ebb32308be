"""``JOBWIRE_EXECUTOR_RUN_AS=fixed:<user>`` on the SSH executor: every owner's job as one sandbox
account, apart from the executor's login (its files, its key, its processes), through sudo."""

from __future__ import annotations

import pwd
import secrets
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobwire.execution.accounts import create_account
from tests.fixtures.ssh import SshCluster, allow_sudo

pytestmark = [pytest.mark.e2e, pytest.mark.backend("ssh"), pytest.mark.slow]

TAG = secrets.token_hex(3)
SANDBOX = f"jw-sandbox-{TAG}"
KEYS = {owner: secrets.token_hex(16) for owner in (f"ann-{TAG}", f"ben-{TAG}", "ops")}
KEYS_FILE = Path(tempfile.gettempdir()) / f"jw-ssh-fixed-keys-{TAG}"
STACK_ENV = {
    "JOBWIRE_GATEWAY_AUTH": "tokens",
    "JOBWIRE_GATEWAY_API_KEYS_FILE": str(KEYS_FILE),
    "JOBWIRE_EXECUTOR_RUN_AS": f"fixed:{SANDBOX}",
}
STACK_HEADERS = {"Authorization": f"Bearer {KEYS['ops']}"}

JOB = r"""
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK $name"; else echo "DENIED $name"; fi; }
id -un
try own-tree ls "$ROOT/.executor"
try ssh-key cat "$SSH_KEY"
try list-jobs ls "$ROOT/jobs"
echo out > "$JOBWIRE_OUTPUT_DIR/o.txt"
"""


@pytest.fixture(scope="module", autouse=True)
def sandbox(cluster: SshCluster) -> Iterator[pwd.struct_passwd]:
    KEYS_FILE.write_text("".join(f"{o} {k}\n" for o, k in KEYS.items()))
    KEYS_FILE.chmod(0o600)
    create_account(SANDBOX, str(cluster.base / "homes"))
    rule = allow_sudo(cluster, [SANDBOX])
    try:
        yield pwd.getpwnam(SANDBOX)
    finally:
        rule.unlink(missing_ok=True)
        subprocess.run(["userdel", SANDBOX], capture_output=True, check=False)
        KEYS_FILE.unlink(missing_ok=True)


def test_fixed_runs_every_owner_as_the_sandbox_apart_from_the_login(ssh_stack: Any, sandbox) -> None:
    root = ssh_stack.cluster.home / ".jobwire"
    env = {"ROOT": str(root), "SSH_KEY": str(ssh_stack.cluster.client_key)}
    for owner in (o for o in KEYS if o != "ops"):
        headers = {"Authorization": f"Bearer {KEYS[owner]}"}
        with httpx.Client(base_url=ssh_stack.stack.api_url, timeout=30, headers=headers) as api:
            r = api.post("/v1/jobs", json={"command": ["/bin/sh", "-c", JOB], "env": env})
            assert r.status_code in (201, 202), r.text
            job = r.json()["id"]

            def ended(api: httpx.Client = api, job: str = job) -> dict[str, Any] | None:
                body: dict[str, Any] = api.get(f"/v1/jobs/{job}").json()
                return body if body["state"] in ("succeeded", "failed") else None

            done = ssh_stack.wait_for(ended, 40, what=f"{owner}'s job to end")
            out = api.get(f"/v1/jobs/{job}/logs", params={"stream": "stdout"}).text
            assert (done["state"], done["exit_code"]) == ("succeeded", 0), (done, out)
            assert out.splitlines() == [SANDBOX, "DENIED own-tree", "DENIED ssh-key", "DENIED list-jobs"]
            assert [a["name"] for a in api.get(f"/v1/jobs/{job}/artifacts").json()["items"]] == ["o.txt"]
            d = root / "jobs" / job / "1"
            assert (d.stat().st_uid, stat.S_IMODE(d.stat().st_mode)) == (sandbox.pw_uid, 0o700)
