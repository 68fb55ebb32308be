"""Turn a JobSpec into the argv the wrapper runs, plus the files that must exist first."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from jobwire.contracts.v1 import JobSpec

from ..attempt.files import FileToWrite
from ..attempt.layout import SCRIPT, AttemptDir
from ..catalog.model import Catalog
from ..executor import StartRefused

NO_CATALOG = "no program catalog is configured on this node"
#: How code files are run when the spec names no interpreter.
INTERPRETERS: dict[str, list[str]] = {".py": ["python3"], ".sh": ["/bin/sh"]}


@dataclass(frozen=True)
class Plan:
    argv: list[str]
    cwd: str
    files: list[FileToWrite] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)


def working_dir(workdir: str | None, d: AttemptDir, roots: Sequence[str] = ()) -> str:
    """Where the job starts: its attempt's ``work`` directory or a directory below it, or an absolute
    directory only below one of this node's ``roots`` (none by default: every absolute one refused).

    The gateway checks the shape at submit; this is the node's own rule, on the normalised path, so
    neither ``..`` nor a doubled slash takes a job out of where the node lets it run (issue 12).
    """
    if workdir is None:
        return d.work
    if not posixpath.isabs(workdir):
        cwd = posixpath.normpath(posixpath.join(d.work, workdir))
        if cwd != d.work and not cwd.startswith(d.work + "/"):
            raise StartRefused(f"the working directory {workdir!r} leaves the job's own directory")
        return cwd
    cwd = posixpath.normpath(workdir)
    for root in roots:
        top = posixpath.normpath(root)
        if cwd == top or cwd.startswith(top.rstrip("/") + "/"):
            return cwd
    allowed = ", ".join(roots) if roots else "none: set JOBWIRE_EXECUTOR_WORKDIR_ROOTS"
    raise StartRefused(
        f"the working directory {workdir!r} is not below this node's allowed roots ({allowed})"
    )


def plan(
    spec: JobSpec, d: AttemptDir, catalog: Catalog | None = None, workdir_roots: Sequence[str] = ()
) -> Plan:
    """The argv for ``spec``; raises StartRefused for what this node can never run.

    A ``program`` is looked up in ``catalog`` (the node's programs); its ``args`` follow the
    program's argv as separate arguments, never through a shell. ``workdir_roots``: see
    :func:`working_dir`.
    """
    cwd = working_dir(spec.workdir, d, workdir_roots)
    dirs = [d.work, d.outputs] + ([cwd] if cwd.startswith(d.work + "/") else [])
    if spec.command is not None:
        return Plan([*spec.command, *spec.args], cwd, [], dirs)
    if spec.script is not None:
        path = d.file(SCRIPT)
        script = FileToWrite(path, spec.script.encode(), 0o755)
        argv = [path] if spec.script.startswith("#!") else ["/bin/sh", path]
        return Plan([*argv, *spec.args], cwd, [script], dirs)
    if spec.code is not None:
        code = spec.code
        if code.filename in (".", ".."):
            raise StartRefused(f"{code.filename!r} is not a file name")
        path = posixpath.join(d.work, code.filename)
        interpreter = code.interpreter or INTERPRETERS.get(posixpath.splitext(code.filename)[1].lower())
        if not interpreter:
            known = ", ".join(sorted(INTERPRETERS))
            raise StartRefused(
                f"cannot tell how to run {code.filename!r}: give code.interpreter "
                f"(files ending in {known} run without one)"
            )
        return Plan([*interpreter, path, *spec.args], cwd, [FileToWrite(path, code.content.encode())], dirs)
    if spec.program is not None:
        if catalog is None:
            raise StartRefused(NO_CATALOG)
        return Plan([*catalog.resolve(spec.program).argv, *spec.args], cwd, [], dirs)
    raise StartRefused("the job names nothing to run")
