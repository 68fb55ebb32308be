"""Run-as on the SSH executor, attacked (issue 12 item 1): two owners, each job as its own account.

The real stack with tokens (an API key per owner), real sshd nodes behind the jump host, and two
accounts made by the executor's own create path (``accounts.create_account``) that the login may run
as through a sudoers drop-in (:func:`allow_sudo`), and one it may not. Bob's job tries each read and
write the audit did with one account for everyone; every one must fail, and each owner's own job
runs as its account, its outputs uploaded; cancel and re-adoption after kill -9 still work.
"""

from __future__ import annotations

import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobwire.execution.accounts import create_account, sanitise
from tests.fixtures.ssh import SshCluster, allow_sudo

pytestmark = [pytest.mark.e2e, pytest.mark.backend("ssh"), pytest.mark.slow]

TAG = secrets.token_hex(3)
ALICE, BOB, CAROL = f"alice-{TAG}", f"bob-{TAG}", f"carol-{TAG}"
KEYS = {owner: secrets.token_hex(16) for owner in (ALICE, BOB, CAROL, "ops")}
KEYS_FILE = Path(tempfile.gettempdir()) / f"jw-ssh-runas-keys-{TAG}"
STACK_ENV = {
    "JOBWIRE_GATEWAY_AUTH": "tokens",
    "JOBWIRE_GATEWAY_API_KEYS_FILE": str(KEYS_FILE),
    "JOBWIRE_EXECUTOR_RUN_AS": "owner",
    # room for an executor restart on 2 busy cores before the scheduler gives its node up
    "JOBWIRE_SCHEDULER_NODE_TIMEOUT": "20",
}
STACK_HEADERS = {"Authorization": f"Bearer {KEYS['ops']}"}


def account(owner: str) -> str:
    return sanitise(owner, "jw-")


@pytest.fixture(scope="module", autouse=True)
def accounts(cluster: SshCluster) -> Iterator[dict[str, pwd.struct_passwd]]:
    """alice's and bob's accounts, which the login may sudo to; carol's exists but has no rule."""
    KEYS_FILE.write_text("".join(f"{o} {k}\n" for o, k in KEYS.items()))
    KEYS_FILE.chmod(0o600)
    homes = cluster.base / "homes"
    names = [account(o) for o in (ALICE, BOB, CAROL)]
    for name in names:
        create_account(name, str(homes))
    rule = allow_sudo(cluster, names[:2])
    try:
        yield {o: pwd.getpwnam(account(o)) for o in (ALICE, BOB, CAROL)}
    finally:
        rule.unlink(missing_ok=True)
        for name in names:
            subprocess.run(["userdel", name], capture_output=True, check=False)
        KEYS_FILE.unlink(missing_ok=True)


def client(ssh_stack: Any, owner: str) -> httpx.Client:
    return httpx.Client(
        base_url=ssh_stack.stack.api_url, timeout=30, headers={"Authorization": f"Bearer {KEYS[owner]}"}
    )


def submit(api: httpx.Client, **spec: Any) -> dict[str, Any]:
    r = api.post("/v1/jobs", json={"node": "gpu-a", **spec})
    assert r.status_code in (201, 202), r.text
    return dict(r.json())


def wait_state(ssh_stack: Any, api: httpx.Client, job_id: str, states: set[str] | str, timeout: float = 40):
    want = {states} if isinstance(states, str) else states

    def check() -> dict[str, Any] | None:
        body = api.get(f"/v1/jobs/{job_id}").json()
        return body if body.get("state") in want else None

    return ssh_stack.wait_for(check, timeout, what=f"{job_id} to be {sorted(want)}")


def logs(api: httpx.Client, job_id: str, stream: str = "stdout") -> str:
    r = api.get(f"/v1/jobs/{job_id}/logs", params={"stream": stream})
    assert r.status_code == 200, r.text
    return r.text


#: alice's job keeps running (10 s) while bob's tries to reach it, even when bob's starts late
ALICE_JOB = r"""
echo alice-stdout-secret
echo alice-work-secret > work-secret.txt
echo alice-output > "$JOBWIRE_OUTPUT_DIR/result.txt"
echo $$ > job.pid
id -un
echo "home=$HOME secret=$ALICE_SECRET"
: > ready
sleep 10
"""

#: each attempt prints DENIED or LEAK; the job then tries to record its own exit code as 0 and exits 3
BOB_JOB = r"""
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK $name"; else echo "DENIED $name"; fi; }
B_OWN="$ROOT/.executor/jobs/$JOBWIRE_JOB_ID/1"
try alice-stdout cat "$A_OWN/stdout"
try alice-work cat "$A_DIR/work/work-secret.txt"
try alice-launch-args cat "$A_DIR/launch.args"
try alice-outputs ls "$A_DIR/outputs"
try alice-output-file cat "$A_DIR/outputs/result.txt"
try alice-run-json cat "$A_OWN/run.json"
try alice-environ cat "/proc/$A_JOB_PID/environ"
try ssh-key cat "$SSH_KEY"
try executor-environ cat "/proc/$EXECUTOR_PID/environ"
try wrapper-environ cat "/proc/$A_PID/environ"
try alice-exit-code sh -c 'echo 77 > "$A_OWN/exit_code"'
try alice-state sh -c 'echo {} > "$A_OWN/state.json"'
try alice-signal kill -s KILL -- "-$A_PID"
try alice-job-signal kill -s KILL "$A_JOB_PID"
try list-jobs ls "$ROOT/jobs"
try own-tree ls "$ROOT/.executor"
try rename-alice mv "$ROOT/jobs/$A_JOB" "$ROOT/jobs/$A_JOB.x"
try my-exit-code sh -c 'echo 0 > "$B_OWN/exit_code"'
try my-pid sh -c 'echo 1 > "$B_OWN/pid"'
try sudo-as-alice sudo -n -u "$A_ACCOUNT" true
ln -s "$A_DIR/outputs/result.txt" "$JOBWIRE_OUTPUT_DIR/stolen.txt"
mv "$LOOSE/root-only" "$JOBWIRE_OUTPUT_DIR/moved.txt" && echo moved
echo bob-output > "$JOBWIRE_OUTPUT_DIR/mine.txt"
id -un
exit 3
"""
ATTEMPTS = [
    "alice-stdout",
    "alice-work",
    "alice-launch-args",
    "alice-outputs",
    "alice-output-file",
    "alice-run-json",
    "alice-environ",
    "ssh-key",
    "executor-environ",
    "wrapper-environ",
    "alice-exit-code",
    "alice-state",
    "alice-signal",
    "alice-job-signal",
    "list-jobs",
    "own-tree",
    "rename-alice",
    "my-exit-code",
    "my-pid",
    "sudo-as-alice",
]


@pytest.fixture
def loose_dir() -> Iterator[Path]:
    """A world-writable directory without the sticky bit holding a root-only file: bob's job may move
    it (a rename needs no read right) but it must never be uploaded."""
    d = Path(tempfile.mkdtemp(prefix="jw-ssh-loose-", dir="/tmp"))
    d.chmod(0o777)
    (d / "root-only").write_text("root's secret\n")
    (d / "root-only").chmod(0o600)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_owners_jobs_run_as_their_accounts_and_cannot_reach_each_other(ssh_stack, accounts, loose_dir):
    root = ssh_stack.cluster.home / ".jobwire"
    login_uid = ssh_stack.cluster.uid
    with client(ssh_stack, ALICE) as alice, client(ssh_stack, BOB) as bob:
        a = submit(alice, command=["/bin/sh", "-c", ALICE_JOB], env={"ALICE_SECRET": "s3cr3t"})
        a_dir = root / "jobs" / a["id"] / "1"
        a_own = root / ".executor" / "jobs" / a["id"] / "1"
        ssh_stack.wait_for((a_dir / "work" / "ready").exists, 30, what="alice's job to write its files")

        # what the executor made: the job's directory is the account's, 0700; its own the login's
        a_uid = accounts[ALICE].pw_uid
        for d in (a_dir.parent, a_dir, a_dir / "work", a_dir / "outputs"):
            info = d.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (a_uid, 0o700), d
        for d in (a_own, root / ".executor"):
            info = d.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (login_uid, 0o700), d
        assert stat.S_IMODE((root / "jobs").stat().st_mode) == 0o1733
        a_job_pid = (a_dir / "work" / "job.pid").read_text().strip()
        assert Path(f"/proc/{a_job_pid}").stat().st_uid == a_uid

        # the files API reads her directory as her account
        listing = alice.get(f"/v1/jobs/{a['id']}/files")
        assert listing.status_code == 200, listing.text
        assert {"work/work-secret.txt", "outputs/result.txt"} <= {e["path"] for e in listing.json()["items"]}
        assert alice.get(f"/v1/jobs/{a['id']}/files/work/work-secret.txt").text == "alice-work-secret\n"

        env = {
            "A_JOB": a["id"],
            "A_DIR": str(a_dir),
            "A_OWN": str(a_own),
            "A_PID": (a_own / "pid").read_text().strip(),
            "A_JOB_PID": a_job_pid,
            "A_ACCOUNT": account(ALICE),
            "ROOT": str(root),
            "SSH_KEY": str(ssh_stack.cluster.client_key),
            "EXECUTOR_PID": str(ssh_stack.executor.proc.pid),
            "LOOSE": str(loose_dir),
        }
        b = submit(bob, command=["/bin/sh", "-c", BOB_JOB], env=env)
        b_done = wait_state(ssh_stack, bob, b["id"], {"succeeded", "failed"})
        out = logs(bob, b["id"])
        assert [line for line in out.splitlines() if line.startswith("LEAK")] == [], out
        assert [line.split()[1] for line in out.splitlines() if line.startswith("DENIED")] == ATTEMPTS
        assert out.splitlines()[-2:] == ["moved", account(BOB)]
        # the exit code is the one the job exited with, not the 0 it tried to record
        assert (b_done["state"], b_done["exit_code"]) == ("failed", 3)
        # its own output is uploaded; the symlink to alice's output and root's file it moved in are not
        arts = bob.get(f"/v1/jobs/{b['id']}/artifacts").json()["items"]
        assert [x["name"] for x in arts] == ["mine.txt"]
        assert bob.get(f"/v1/jobs/{b['id']}/artifacts/mine.txt").text == "bob-output\n"
        assert (root / "jobs" / b["id"] / "1" / "outputs" / "moved.txt").stat().st_uid == 0

        a_done = wait_state(ssh_stack, alice, a["id"], {"succeeded", "failed"})
        assert (a_done["state"], a_done["exit_code"]) == ("succeeded", 0), a_done
        home = accounts[ALICE].pw_dir
        assert logs(alice, a["id"]).splitlines() == [
            "alice-stdout-secret",
            account(ALICE),
            f"home={home} secret=s3cr3t",
        ]
        assert home.startswith(str(ssh_stack.cluster.base / "homes"))
        arts = alice.get(f"/v1/jobs/{a['id']}/artifacts").json()["items"]
        assert [x["name"] for x in arts] == ["result.txt"]
        assert alice.get(f"/v1/jobs/{a['id']}/artifacts/result.txt").text == "alice-output\n"


def test_a_job_gets_the_environment_the_local_runner_gives(ssh_stack, accounts):
    """Its spec's env (a loader variable too: it is set after sudo, by env, for the job alone), the
    JOBWIRE_* variables, the account's HOME/USER/LOGNAME and the login's allowed PATH/LANG; nothing
    of sudo's (SUDO_*), sshd's or the executor's."""
    show = "env | sort"
    with client(ssh_stack, ALICE) as alice:
        job = submit(alice, command=["sh", "-c", show], env={"MINE": "a b", "LD_LIBRARY_PATH": "/opt/x"})
        done = wait_state(ssh_stack, alice, job["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded", done
        seen = dict(line.split("=", 1) for line in logs(alice, job["id"]).splitlines() if "=" in line)
    name = account(ALICE)
    assert seen["MINE"] == "a b" and seen["LD_LIBRARY_PATH"] == "/opt/x"
    assert (seen["USER"], seen["LOGNAME"], seen["HOME"]) == (name, name, accounts[ALICE].pw_dir)
    assert seen["JOBWIRE_JOB_ID"] == job["id"] and "PATH" in seen
    expected = {"MINE", "LD_LIBRARY_PATH", "USER", "LOGNAME", "HOME", "PATH", "LANG", "TZ", "TMPDIR"}
    shell = {"PWD", "SHLVL", "_"}
    extra = {k for k in seen if k not in expected | shell and not k.startswith(("JOBWIRE_", "CUDA_", "LC_"))}
    assert extra == set(), seen


def test_an_owner_the_login_may_not_sudo_to_fails_with_the_sudoers_line(ssh_stack, accounts):
    with client(ssh_stack, CAROL) as carol:
        job = submit(carol, command=["sh", "-c", "id -un > /tmp/jw-ran-as-$$"])
        done = wait_state(ssh_stack, carol, job["id"], {"succeeded", "failed"})
    assert done["state"] == "failed"
    assert account(CAROL) in done["reason"]
    assert f"{ssh_stack.cluster.user} ALL=({account(CAROL)}) NOPASSWD: ALL" in done["reason"], done["reason"]
    assert "running" not in [t["state"] for t in done["transitions"]]
    assert not (ssh_stack.cluster.home / ".jobwire" / "jobs" / job["id"]).exists()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_reaches_a_run_as_job_and_its_children(ssh_stack, accounts):
    """The login cannot signal the account's processes: the executor signals them as the account."""
    root = ssh_stack.cluster.home / ".jobwire"
    with client(ssh_stack, BOB) as bob:
        script = "trap 'echo term; exit 143' TERM; sleep 60 & echo $! > child.pid; wait"
        job = submit(bob, command=["/bin/sh", "-c", script])
        wait_state(ssh_stack, bob, job["id"], "running")
        child_file = root / "jobs" / job["id"] / "1" / "work" / "child.pid"
        ssh_stack.wait_for(
            lambda: child_file.exists() and child_file.read_text().strip(), 20, what="the child"
        )
        child = int(child_file.read_text())
        assert Path(f"/proc/{child}").stat().st_uid == accounts[BOB].pw_uid
        r = bob.post(f"/v1/jobs/{job['id']}/cancel")
        assert r.status_code in (200, 202), r.text
        done = wait_state(ssh_stack, bob, job["id"], {"cancelled", "failed", "succeeded"})
        assert done["state"] == "cancelled", done
        assert logs(bob, job["id"]) == "term\n"
    ssh_stack.wait_for(lambda: not _alive(child), 20, what="the job's child to be killed")


def test_a_killed_executor_adopts_its_run_as_job_after_a_restart(ssh_stack, accounts):
    with client(ssh_stack, ALICE) as alice:
        job = submit(alice, command=["/bin/sh", "-c", "echo a; sleep 3; id -un; exit 6"])
        wait_state(ssh_stack, alice, job["id"], "running")
        assert ssh_stack.executor is not None
        ssh_stack.executor.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        ssh_stack.executor.proc.wait(10)  # type: ignore[union-attr]
        exit_file = ssh_stack.cluster.home / ".jobwire" / ".executor" / "jobs" / job["id"] / "1" / "exit_code"
        ssh_stack.wait_for(exit_file.exists, 20, what="the job to end while no executor runs")
        ssh_stack.start_executor()
        done = wait_state(ssh_stack, alice, job["id"], {"succeeded", "failed"})
        assert (done["state"], done["exit_code"]) == ("failed", 6), done
        assert logs(alice, job["id"]) == f"a\n{account(ALICE)}\n"
        # deleting it removes its directory (removed as the account: the login may not) and the executor's
        d = ssh_stack.cluster.home / ".jobwire" / "jobs" / job["id"]
        own = exit_file.parent.parent
        assert d.is_dir() and own.is_dir()
        assert alice.delete(f"/v1/jobs/{job['id']}").status_code in (202, 204)
        ssh_stack.wait_for(lambda: not d.exists() and not own.exists(), 20, what=f"{d} and {own} removed")
    ssh_stack.wait_nodes_up()
