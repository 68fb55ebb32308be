"""Turn a JobSpec into the argv the wrapper runs, plus the files that must exist first."""

from __future__ import annotations

import posixpath
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


def plan(spec: JobSpec, d: AttemptDir, catalog: Catalog | None = None) -> Plan:
    """The argv for ``spec``; raises StartRefused for what this node can never run.

    A ``program`` is looked up in ``catalog`` (the node's programs); its ``args`` follow the
    program's argv as separate arguments, never through a shell.
    """
    cwd = d.work if spec.workdir is None else posixpath.join(d.work, spec.workdir)
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
