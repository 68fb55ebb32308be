"""Bind mounts a job asks for, checked against the host directories this executor allows.

The contracts already refuse relative paths, ``..``, ``/`` and the engine's own files; here every
source is resolved on this machine (symlinks included, the shared root is the same NFS mount the
Docker hosts see) and the resolved path is what the engine mounts, so a link cannot point it
elsewhere later.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from jobwire.contracts.v1 import JobSpec
from jobwire.contracts.v1.spec import DockerOptions, check_bind_source
from jobwire.execution import StartRefused

from .layout import OWN_TREE, inside


@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    read_only: bool

    def spec(self) -> str:
        return f"{self.source}:{self.target}:{'ro' if self.read_only else 'rw'}"


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_source(source: str, allowed: list[str], what: str, kept: Sequence[str] = ()) -> str:
    """The real path of ``source`` when it exists inside an allowed root; StartRefused otherwise.

    Nothing under ``kept`` (every job's own directory, the executor's files and logs) is mountable:
    jobs stay apart, and out of the executor's bookkeeping.
    """
    try:
        clean = check_bind_source(source, what)
    except ValueError as e:
        raise StartRefused(str(e)) from None
    real = os.path.realpath(clean)
    if not any(_under(real, root) for root in allowed):
        shown = f"{source!r}" + (f" (resolves to {real!r})" if real != clean else "")
        raise StartRefused(
            f"{what} {shown} is outside the directories this node allows: {', '.join(allowed)}"
        )
    for root in kept:
        if _under(real, root):
            raise StartRefused(
                f"{what} {source!r} is inside the job directories ({root}), which jobs never share"
            )
    if not os.path.exists(real):
        raise StartRefused(f"{what} {source!r} does not exist on this node")
    try:
        check_bind_source(real, what)
    except ValueError as e:
        raise StartRefused(str(e)) from None
    return real


def job_binds(
    spec: JobSpec, shared_root: str, allowed: list[str], stored: dict[str, str] | None = None
) -> list[Bind]:
    """The user's mounts plus ``inputs``, always read-only: those in ``stored`` (name → the host file
    the executor wrote from the inputs store) at ``/jobwire/work/<path>``, the others as paths
    relative to the shared root."""
    stored = stored or {}
    opts = spec.docker or DockerOptions()
    kept = [os.path.realpath(posixpath.join(shared_root, sub)) for sub in ("jobs", OWN_TREE)]
    binds = [
        Bind(
            resolve_source(m["source"], allowed, "docker.mounts source", kept),
            m["target"],
            m.get("read_only", False),
        )
        for m in opts.mounts
    ]
    for ref in spec.inputs:
        name = ref.name
        if name in stored:
            binds.append(Bind(stored[name], inside("work", ref.target), True))
            continue
        if name.startswith("/") or ".." in name.split("/"):
            raise StartRefused(f"input {name!r} must be a path relative to the shared root")
        source = resolve_source(posixpath.join(shared_root, name), allowed, f"input {name!r}", kept)
        if ref.path is None:
            target = inside("inputs", posixpath.basename(name.rstrip("/")))
        else:
            target = inside("work", ref.path)  # the contracts refuse absolute paths and '..'
        binds.append(Bind(source, posixpath.normpath(target), True))
    targets = [b.target for b in binds]
    if len(set(targets)) != len(targets):
        raise StartRefused("two mounts or inputs share one target path")
    return binds
