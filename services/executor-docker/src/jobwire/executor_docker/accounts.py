"""Which user a container runs as, and its attempt directory given to it (issue 12 item 1).

Under ``JOBWIRE_EXECUTOR_RUN_AS=fixed:<user>|owner`` the container runs as the mapped account's
``uid:gid`` (its supplementary groups added), never as the image's user or the one the job asks for;
the attempt directory on the shared storage becomes that account's, 0700
(:meth:`jobwire.execution.attempt.AttemptFiles.prepare`, as for every backend), so another owner's
container (another uid) cannot read it even through a bind of the shared root. The executor's files
and the logs stay the executor's, 0700, outside the job's directory and never mounted. Under ``self``
the image's user (or ``docker.user``) runs, but never root unless ``JOBWIRE_DOCKER_ALLOW_ROOT=1``.
"""

from __future__ import annotations

from jobwire.execution import StartRefused
from jobwire.execution.accounts import Account

_ROOT_NAMES = {"0", "root"}


def _is_root(user: str) -> bool:
    return user.partition(":")[0] in _ROOT_NAMES


def container_user(asked: str | None, account: Account | None, *, allow_root: bool) -> str | None:
    """The ``user=`` of the container (None: the image's); StartRefused for what the node forbids."""
    if account is not None:
        if asked is not None and asked not in (account.name, str(account.uid)):
            raise StartRefused(
                f"docker.user {asked!r}: jobs of this owner run as the account {account.name!r} on this node"
            )
        if account.uid == 0 and not allow_root:
            raise StartRefused("containers never run as root here unless JOBWIRE_DOCKER_ALLOW_ROOT=1")
        return f"{account.uid}:{account.gid}"
    if asked is not None and _is_root(asked) and not allow_root:
        raise StartRefused(
            f"docker.user {asked!r} is root: containers never run as root here unless "
            "JOBWIRE_DOCKER_ALLOW_ROOT=1"
        )
    return asked
