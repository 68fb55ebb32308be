"""Path mapping: shared storage as users and the gateway see it vs. as the cluster sees it.

A user writes ``/gateway/view/data/in.csv``; on the cluster the same file is ``/cluster/view/data/in.csv``.
Values of a job's ``workdir``, ``command``, ``args`` and ``env`` that *start* with a mapped prefix, on a
path-component boundary, are rewritten (the longest prefix wins); nothing inside a longer text is
touched. A mapped value is normalised first and refused if ``..`` takes it out of its prefix, so a
mapping never becomes a way to reach the rest of the cluster's file system.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping

import msgspec

from jobwire.contracts.v1 import JobSpec, RunJob

from .executor import StartRefused


class PathEscape(StartRefused):
    """A value starts with a mapped prefix but ``..`` leads it out of that directory."""


class PathMap:
    """``source -> target`` prefix pairs; build from a mapping (``JOBWIRE_*_PATH_MAP`` settings)."""

    def __init__(self, pairs: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        checked = [(_prefix(src, "source"), _prefix(dst, "target")) for src, dst in items]
        if len({src for src, _ in checked}) != len(checked):
            raise ValueError("path map: a source prefix is mapped twice")
        # longest first, so /data/projects wins over /data
        self.pairs = sorted(checked, key=lambda p: len(p[0]), reverse=True)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def map(self, value: str, what: str = "value") -> str:
        """``value`` with its mapped prefix replaced; unchanged when no prefix matches."""
        for src, dst in self.pairs:
            if value != src and not value.startswith(src + "/"):
                continue
            norm = posixpath.normpath(value)
            if norm != src and not norm.startswith(src + "/"):
                raise PathEscape(f"{what} {value!r} leaves the shared directory {src} ('..')")
            mapped = dst + norm[len(src) :]
            return mapped + "/" if value.endswith("/") and not mapped.endswith("/") else mapped
        return value

    def spec(self, spec: JobSpec) -> JobSpec:
        """``spec`` with its workdir, command, args and env values mapped."""
        if not self.pairs:
            return spec
        changes: dict[str, object] = {}
        if spec.workdir is not None:
            changes["workdir"] = self.map(spec.workdir, "workdir")
        if spec.command is not None:
            changes["command"] = [self.map(a, f"command[{i}]") for i, a in enumerate(spec.command)]
        changes["args"] = [self.map(a, f"args[{i}]") for i, a in enumerate(spec.args)]
        changes["env"] = {k: self.map(v, f"env {k}") for k, v in spec.env.items()}
        return msgspec.structs.replace(spec, **changes)

    def run(self, run: RunJob) -> RunJob:
        """``run`` with its spec mapped (what an executor writes into the batch script)."""
        return run if not self.pairs else msgspec.structs.replace(run, spec=self.spec(run.spec))


def _prefix(path: str, what: str) -> str:
    if not posixpath.isabs(path) or "\0" in path:
        raise ValueError(f"path map: {what} {path!r} must be an absolute path")
    norm = posixpath.normpath(path)
    if norm == "/" or norm.startswith("//"):
        raise ValueError(f"path map: {what} {path!r} cannot be the root directory")
    return norm
