"""Run a command that dies with its parent: ``python -m jobwire.stack.orphans PARENT_PID SIGNAL -- ARGV``.

The stack's launcher starts every service through this, so a ``kill -9`` of the launcher leaves no
service holding :8000 or :4222. Linux's ``PR_SET_PDEATHSIG`` is kept across ``exec``; a parent that died
before it was set is caught by comparing ``getppid()`` with the pid the launcher passed.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1


def main(args: list[str]) -> None:
    if len(args) < 4 or args[2] != "--":
        sys.exit("usage: python -m jobwire.stack.orphans PARENT_PID SIGNAL -- ARGV...")
    parent, sig, argv = int(args[0]), int(args[1]), args[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        sys.exit(f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if os.getppid() != parent:  # the launcher died before prctl: nobody would stop us
        sys.exit(f"parent {parent} is gone; not starting {argv[0]}")
    os.execvp(argv[0], argv)  # noqa: S606 - argv from the launcher, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
