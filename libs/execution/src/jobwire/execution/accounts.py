"""Which OS account a job runs as (issue 12 item 1): a job's owner mapped to a POSIX account.

Batch systems run a job as its submitting user (Slurm, HTCondor); jobwire's owners are API names, so
an executor maps them (``JOBWIRE_EXECUTOR_RUN_AS``):

- ``self``: the executor's own account (one person's laptop; one owner per executor, see the service);
- ``fixed:<user>``: every job as ``<user>`` (a sandbox account, apart from the executor's secrets);
- ``owner``: one account per owner, from a mapping file (``JOBWIRE_EXECUTOR_ACCOUNTS_FILE``, lines
  ``owner: account``) and/or a naming rule (``JOBWIRE_EXECUTOR_ACCOUNT_PREFIX`` + the owner's name
  made a valid POSIX user name), created with ``useradd`` only where ``JOBWIRE_EXECUTOR_CREATE_ACCOUNTS``
  allows it.

Root (uid 0) is never a job's account unless ``JOBWIRE_EXECUTOR_ALLOW_ROOT`` says so. Names are
decided here once and used by every backend: the local runner resolves them with :mod:`pwd`, an SSH
or batch backend logs in or submits as :meth:`RunAs.account_name`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["self", "fixed", "owner"]
#: The naming rule's prefix when the settings give none and no mapping file is used.
DEFAULT_PREFIX = "jw-"
#: Where created accounts get their home directories unless configured.
DEFAULT_HOME_BASE = "/var/lib/jobwire/home"
#: shadow-utils' limit on a user name (``useradd`` refuses longer ones on Debian).
NAME_MAX = 32
#: A portable POSIX user name as useradd's default NAME_REGEX accepts it (no trailing ``$``).
_VALID = re.compile(r"^[a-z_][a-z0-9_-]*$(?!\n)")
_INVALID_CHARS = re.compile(r"[^a-z0-9_-]+")
#: ``useradd`` exit status for "username already in use" (another executor won the race).
_USERADD_EXISTS = 9


class StartRefused(Exception):
    """This node cannot run the job as asked; reported as ``failed`` with this message as the reason.

    Defined here, below everything, so the account rules can refuse a job; exported by
    :mod:`jobwire.execution.executor` as ever.
    """


class AccountRefused(StartRefused):
    """The job's owner has no account this executor may run it as: the job fails with this reason."""


@dataclass(frozen=True)
class Account:
    """An OS account a job runs as, resolved on this machine."""

    name: str
    uid: int
    gid: int
    #: supplementary groups (``initgroups``), the primary group included
    groups: tuple[int, ...]
    home: str


def valid_name(name: str) -> bool:
    """Whether ``name`` is a user name ``useradd`` accepts and no shell or option parser misreads."""
    return len(name) <= NAME_MAX and bool(_VALID.match(name))


def sanitise(owner: str, prefix: str) -> str:
    """``prefix`` + ``owner`` as a valid POSIX user name, the same every time.

    Lower-cased, runs of other characters made ``-``. Where that changed the name or it is too long,
    a hash of the owner's exact name is appended, so ``Alice`` and ``alice``, or ``a@b`` and ``a-b``,
    never share an account.
    """
    base = _INVALID_CHARS.sub("-", owner.lower()).strip("-")
    name = f"{prefix}{base}"
    if name == f"{prefix}{owner}" and valid_name(name):
        return name
    tag = hashlib.sha256(owner.encode()).hexdigest()[:8]
    head = name[: NAME_MAX - len(tag) - 1].rstrip("-")
    name = f"{head}-{tag}" if head else f"jw-{tag}"
    if not _VALID.match(name):  # a prefix or owner that starts with a digit or '-'
        name = f"jw-{tag}"
    return name


def parse_mapping(text: str, source: str = "the accounts file") -> dict[str, str]:
    """``owner: account`` lines (``#`` comments, blank lines); each account a valid user name."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        owner, sep, account = line.rpartition(":")
        owner, account = owner.strip(), account.strip()
        if not sep or not owner:
            raise ValueError(f"{source} line {n}: expected 'owner: account', got {raw.strip()!r}")
        if not valid_name(account):
            raise ValueError(f"{source} line {n}: {account!r} is not a valid user name")
        if owner in out and out[owner] != account:
            raise ValueError(f"{source} line {n}: owner {owner!r} is mapped twice")
        out[owner] = account
    return out


@dataclass(frozen=True)
class RunAs:
    """How this executor maps a job's owner to an account (parsed once at start)."""

    mode: Mode = "self"
    #: the account of ``fixed:<user>``
    user: str | None = None
    #: owner -> account, from the mapping file (``owner`` mode)
    mapping: Mapping[str, str] = field(default_factory=dict)
    #: the naming rule's prefix for owners the mapping does not name; None: no rule (refused)
    prefix: str | None = DEFAULT_PREFIX
    create: bool = False
    home_base: str = DEFAULT_HOME_BASE
    allow_root: bool = False

    @classmethod
    def parse(
        cls,
        spec: str,
        *,
        accounts_file: str | None = None,
        prefix: str | None = None,
        create: bool = False,
        home_base: str | None = None,
        allow_root: bool = False,
    ) -> RunAs:
        """``self`` | ``fixed:<user>`` | ``owner``; ValueError (refusing the executor's start) otherwise.

        In ``owner`` mode the naming rule applies with ``prefix`` (``jw-`` when neither a prefix nor
        a mapping file is given); with a mapping file and no prefix, an owner the file does not name
        is refused.
        """
        spec = spec.strip()
        home = home_base or DEFAULT_HOME_BASE
        if not os.path.isabs(home):
            raise ValueError(f"the accounts' home base must be an absolute path, not {home!r}")
        if spec == "self":
            return cls("self", allow_root=allow_root)
        if spec.startswith("fixed:"):
            user = spec.removeprefix("fixed:").strip()
            if not valid_name(user):
                raise ValueError(f"JOBWIRE_EXECUTOR_RUN_AS=fixed:{user}: {user!r} is not a valid user name")
            if user == "root" and not allow_root:
                raise ValueError(_ROOT_REFUSED)
            return cls("fixed", user=user, create=create, home_base=home, allow_root=allow_root)
        if spec == "owner":
            mapping: dict[str, str] = {}
            if accounts_file:
                with open(accounts_file, encoding="utf-8") as f:
                    mapping = parse_mapping(f.read(), accounts_file)
            rule = prefix if prefix is not None else (None if accounts_file else DEFAULT_PREFIX)
            if rule and not re.match(r"^[a-z_][a-z0-9_-]*$(?!\n)", rule):
                raise ValueError(f"JOBWIRE_EXECUTOR_ACCOUNT_PREFIX={rule!r} cannot start a user name")
            if not allow_root and "root" in mapping.values():
                raise ValueError(_ROOT_REFUSED)
            return cls(
                "owner", mapping=mapping, prefix=rule, create=create, home_base=home, allow_root=allow_root
            )
        raise ValueError(f"JOBWIRE_EXECUTOR_RUN_AS={spec!r}: expected 'self', 'fixed:<user>' or 'owner'")

    @property
    def is_self(self) -> bool:
        return self.mode == "self"

    def account_name(self, owner: str) -> str | None:
        """The account ``owner``'s jobs run as (None: the executor's own); AccountRefused if none."""
        if self.mode == "self":
            return None
        if self.mode == "fixed":
            assert self.user is not None
            return self.user
        if owner in self.mapping:
            return self.mapping[owner]
        if self.prefix is None:
            raise AccountRefused(
                f"owner {owner!r} has no account on this node (not in JOBWIRE_EXECUTOR_ACCOUNTS_FILE)"
            )
        return sanitise(owner, self.prefix)

    def resolve(self, owner: str) -> Account | None:
        """The account ``owner``'s jobs run as on this machine (None: the executor's own).

        AccountRefused when the account does not exist or is root (and root is not allowed).
        """
        name = self.account_name(owner)
        return None if name is None else lookup(name, allow_root=self.allow_root)

    async def ensure(self, owner: str) -> Account | None:
        """:meth:`resolve`, creating the account first where this executor may (``create``)."""
        name = self.account_name(owner)
        if name is None:
            return None
        try:
            return lookup(name, allow_root=self.allow_root)
        except AccountMissing:
            if not self.create:
                raise
        await asyncio.to_thread(create_account, name, self.home_base)
        return lookup(name, allow_root=self.allow_root)


_ROOT_REFUSED = "jobs never run as root unless JOBWIRE_EXECUTOR_ALLOW_ROOT=1"
#: One useradd at a time in this process (two jobs of a new owner start together).
_creating = threading.Lock()


class AccountMissing(AccountRefused):
    """The mapped account does not exist and this executor may not create it."""


def lookup(name: str, *, allow_root: bool = False) -> Account:
    """``name`` from the passwd and group databases; AccountRefused for a missing or root account."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise AccountMissing(
            f"the account {name!r} does not exist on this node "
            "(create it, or let the executor: JOBWIRE_EXECUTOR_CREATE_ACCOUNTS=1)"
        ) from None
    groups = tuple(dict.fromkeys([pw.pw_gid, *os.getgrouplist(name, pw.pw_gid)]))
    return checked(Account(pw.pw_name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir), allow_root=allow_root)


def checked(account: Account, *, allow_root: bool = False) -> Account:
    """``account`` unless it is root or in the root group (AccountRefused), wherever it was looked up
    (this machine's passwd database, or a node asked over SSH)."""
    if account.uid == 0 and not allow_root:
        raise AccountRefused(f"the account {account.name!r} is root: {_ROOT_REFUSED}")
    if 0 in account.groups and not allow_root:
        raise AccountRefused(f"the account {account.name!r} is in the root group: {_ROOT_REFUSED}")
    return account


def create_account(name: str, home_base: str) -> None:
    """``useradd`` ``name`` (its own group, no login shell, home below ``home_base``); an account that
    appeared meanwhile is fine. Argument list, never a shell; ``name`` was validated."""
    if not valid_name(name):
        raise AccountRefused(f"{name!r} is not a valid user name")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    os.makedirs(home_base, mode=0o755, exist_ok=True)
    argv = [
        useradd,
        "--create-home",
        "--home-dir",
        os.path.join(home_base, name),
        "--shell",
        nologin,
        "--user-group",
        "--comment",
        "jobwire job account",
        "--",
        name,
    ]
    with _creating:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode not in (0, _USERADD_EXISTS):
        why = done.stderr.strip() or f"useradd exited {done.returncode}"
        raise AccountRefused(f"could not create the account {name!r}: {why}")
