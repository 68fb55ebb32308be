"""Owner -> OS account mapping (issue 12 item 1): parsing, naming, lookup and creation on demand.

Run as root on this machine: accounts are really created with useradd and removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess

import pytest

from jobwire.execution.accounts import (
    AccountMissing,
    AccountRefused,
    RunAs,
    lookup,
    parse_mapping,
    sanitise,
    valid_name,
)
from jobwire.execution.settings import executor_settings

pytestmark = pytest.mark.unit
root_only = pytest.mark.usefixtures("as_root")


def test_modes_parse_and_anything_else_refuses_the_start():
    assert RunAs.parse("self").is_self
    fixed = RunAs.parse("fixed:nobody")
    assert (fixed.mode, fixed.user) == ("fixed", "nobody")
    assert RunAs.parse("owner").prefix == "jw-"
    for bad in ("", "me", "fixed:", "fixed:Bad User", "fixed:-rf", "owner:alice"):
        with pytest.raises(ValueError, match="JOBWIRE_EXECUTOR_RUN_AS"):
            RunAs.parse(bad)
    with pytest.raises(ValueError, match="never run as root"):
        RunAs.parse("fixed:root")
    assert RunAs.parse("fixed:root", allow_root=True).user == "root"
    with pytest.raises(ValueError, match="absolute"):
        RunAs.parse("owner", home_base="home")


def test_settings_read_the_policy_from_the_environment(tmp_path):
    mapping = tmp_path / "accounts"
    mapping.write_text("# owner: account\nalice@example.org: alice\n\nbob: bobby  # the lab's\n")
    s = executor_settings(
        {
            "JOBWIRE_EXECUTOR_RUN_AS": "owner",
            "JOBWIRE_EXECUTOR_ACCOUNTS_FILE": str(mapping),
            "JOBWIRE_EXECUTOR_CREATE_ACCOUNTS": "1",
            "JOBWIRE_EXECUTOR_ACCOUNTS_HOME": "/srv/jw",
        }
    )
    policy = s.run_as_policy()
    assert policy.mode == "owner" and policy.create and policy.home_base == "/srv/jw"
    assert policy.account_name("alice@example.org") == "alice"
    assert policy.account_name("bob") == "bobby"
    # a mapping file without a naming rule: an owner it does not name has no account
    with pytest.raises(AccountRefused, match="'carol' has no account"):
        policy.account_name("carol")
    # with an explicit prefix the rule covers the others
    ruled = executor_settings(
        {
            "JOBWIRE_EXECUTOR_RUN_AS": "owner",
            "JOBWIRE_EXECUTOR_ACCOUNTS_FILE": str(mapping),
            "JOBWIRE_EXECUTOR_ACCOUNT_PREFIX": "lab-",
        }
    ).run_as_policy()
    assert ruled.account_name("bob") == "bobby"
    assert ruled.account_name("carol") == "lab-carol"


def test_mapping_file_errors_name_the_line():
    with pytest.raises(ValueError, match="line 2"):
        parse_mapping("alice: alice\nbob\n")
    with pytest.raises(ValueError, match="line 1: 'x y' is not a valid user name"):
        parse_mapping("alice: x y\n")
    with pytest.raises(ValueError, match="mapped twice"):
        parse_mapping("alice: a\nalice: b\n")
    assert parse_mapping("a:b:c: carol\n") == {"a:b:c": "carol"}


def test_owner_names_become_distinct_valid_user_names():
    assert sanitise("alice", "jw-") == "jw-alice"
    names = {
        o: sanitise(o, "jw-")
        for o in ("Alice", "alice@example.org", "alice-example-org", "a b", "a-b", "../etc", "x" * 80, "-")
    }
    for owner, name in names.items():
        assert valid_name(name), (owner, name)
        assert len(name) <= 32
    assert len(set(names.values())) == len(names)
    assert sanitise("alice@example.org", "jw-") == sanitise("alice@example.org", "jw-")
    assert sanitise("alice", "") == "alice"
    assert valid_name(sanitise("9lives", ""))


def test_lookup_refuses_root_and_missing_accounts():
    with pytest.raises(AccountRefused, match="is root"):
        lookup("root")
    assert lookup("root", allow_root=True).uid == 0
    with pytest.raises(AccountMissing, match="does not exist"):
        lookup("jw-nobody-" + secrets.token_hex(4))
    nobody = lookup("nobody")
    assert nobody.uid == pwd.getpwnam("nobody").pw_uid and nobody.gid in nobody.groups


def test_a_mapping_to_root_refuses_the_start(tmp_path):
    f = tmp_path / "accounts"
    f.write_text("alice: root\n")
    with pytest.raises(ValueError, match="never run as root"):
        RunAs.parse("owner", accounts_file=str(f))


@pytest.fixture
def fresh_owner():
    owner = f"Owner.{secrets.token_hex(3)}@Lab"
    yield owner
    name = sanitise(owner, "jw-")
    subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)


@root_only
async def test_accounts_are_created_on_demand_only_when_allowed(fresh_owner, tmp_path):
    home = str(tmp_path / "homes")
    strict = RunAs.parse("owner", home_base=home)
    with pytest.raises(AccountMissing, match="JOBWIRE_EXECUTOR_CREATE_ACCOUNTS=1"):
        await strict.ensure(fresh_owner)

    creating = RunAs.parse("owner", create=True, home_base=home)
    account = await creating.ensure(fresh_owner)
    assert account is not None
    pw = pwd.getpwnam(account.name)
    assert account.name == sanitise(fresh_owner, "jw-")
    assert account.uid == pw.pw_uid != 0 and account.gid == pw.pw_gid != 0
    assert account.home == os.path.join(home, account.name) and os.stat(account.home).st_uid == account.uid
    assert pw.pw_shell.endswith("nologin")
    # the second time (another job of the same owner) finds it, and resolve() agrees
    assert await creating.ensure(fresh_owner) == account == strict.resolve(fresh_owner)


async def test_self_needs_no_account():
    policy = RunAs.parse("self")
    assert policy.account_name("anyone") is None
    assert await policy.ensure("anyone") is None
