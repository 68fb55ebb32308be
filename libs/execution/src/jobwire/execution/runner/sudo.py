"""Starting a job as its account with ``sudo`` where the executor is not root (an SSH node's login).

The attempt's wrapper is the same fixed script as everywhere (:data:`~..attempt.layout.WRAPPER_SCRIPT`),
run by the executor's login account, which keeps the pid, exit code and logs where the job cannot
reach them. Where the local wrapper drops to the account with ``setpriv``, this one runs
``sudo -n -u ACCOUNT -- /bin/bash -c LAUNCH_SCRIPT``: the launcher, as the account, reads the job's
environment and argv from :data:`~..attempt.layout.LAUNCH_ARGS` in the job's own directory (so no
value of the job is on a command line ``ps`` shows, and none passes through sudo's environment
rules), enters the working directory and ``exec``\\ s ``env -i`` with exactly those variables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..executor import StartRefused
from ..transport.sudo import SudoTransport

#: The fixed launcher (``bash -c``; ``$1`` the args file, ``$2`` the working directory): NUL-ended
#: items read byte for byte into an array (the first ``$3`` are ``NAME=VALUE``), never parsed as shell.
#: Exit 125: the args file could not be read; 126: the working directory could not be entered.
LAUNCH_SCRIPT = (
    'jw_a=(); while IFS= read -r -d "" jw_x; do jw_a+=("$jw_x"); done <"$1" || exit 125; '
    'cd -- "$2" 2>/dev/null || { printf "jobwire: cannot enter the working directory %s\\n" "$2" >&2; '
    'exit 126; }; exec /usr/bin/env -i "${jw_a[@]}"'
)


def encode_args(env: Mapping[str, str], argv: Sequence[str]) -> bytes:
    """``NAME=VALUE`` for each variable, then the argv, each NUL-ended (what the launcher reads).

    ``env`` takes the first word without ``=`` as the program, so a program whose name holds ``=``
    cannot be started this way: refused with the reason.
    """
    if not argv:
        raise StartRefused("the job names nothing to run")
    if "=" in argv[0]:
        raise StartRefused(f"the program {argv[0]!r} has '=' in its name, which env would take as a variable")
    items = [f"{k}={v}" for k, v in env.items()] + list(argv)
    if any("\0" in item for item in items):
        raise StartRefused("the job's argv or environment holds a NUL byte")
    return b"".join(item.encode("utf-8", "surrogateescape") + b"\0" for item in items)


@dataclass(frozen=True)
class SudoLaunch:
    """How one job becomes its account on this node."""

    #: the account's own transport (its directory is written and read through it)
    transport: SudoTransport
    #: the allowlisted variables of the login environment (``PATH``, ``LANG``, ...), read from the
    #: node once: after sudo nothing of the launching environment is left to inherit
    inherited: Mapping[str, str] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.transport.account

    def drop(self) -> list[str]:
        """What the wrapper runs, before the args file and the working directory."""
        t = self.transport
        return [t.sudo, "-n", "-u", t.account, "--", "/bin/bash", "-c", LAUNCH_SCRIPT, "jobwire-launch"]
