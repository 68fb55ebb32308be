"""Discovery of ``<root>/<NAME>/<VERSION>/`` program directories over a transport (local or SSH).

A version directory is a program when it holds an entry script the executor's user may execute:
``run``, else ``run.sh``. It is started directly (its ``#!`` line picks the interpreter) with the job's
``args`` as its argv, in the job's work directory. An optional ``description`` file's first line
describes it. One scan is one ``find`` for all programs plus one probe for all descriptions, whatever
the number of programs. Symbolic links are followed: a ``latest -> v2`` link is a version of its own.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from jobwire.contracts.v1 import programs as pv

from ..transport import Transport, TransportError
from .model import Program, Scan

#: entry script names, in order of preference
ENTRIES = ("run", "run.sh")
DESCRIPTION = "description"
MAX_DESCRIPTION = 512
FIND_TIMEOUT = 60.0


def find_argv(root: str) -> list[str]:
    """``x NAME/VERSION/ENTRY`` (executable) or ``- NAME/VERSION/ENTRY``, NUL-terminated."""
    names: list[str] = []
    for entry in ENTRIES:
        names += ["-o", "-name", entry] if names else ["-name", entry]
    return [
        "find", "-L", root, "-mindepth", "3", "-maxdepth", "3", "(", *names, ")",
        "(", "-type", "f", "-executable", "-printf", "x %P\\0", ")", "-o", "-printf", "- %P\\0",
    ]  # fmt: skip


def parse_find(out: bytes, root: str) -> Scan:
    """Programs from :func:`find_argv`'s output (descriptions not read yet)."""
    found: dict[tuple[str, str], dict[str, bool]] = {}
    problems: list[str] = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        text = rec.decode("utf-8", "surrogateescape")
        flag, _, rel = text.partition(" ")
        parts = rel.split("/")
        if len(parts) != 3 or parts[2] not in ENTRIES:
            continue
        name, version, entry = parts
        try:
            pv.check_part(name, "program name")
            pv.check_part(version, "program version")
        except ValueError as e:
            problems.append(f"skipped {posixpath.join(root, rel)!r}: {e}")
            continue
        found.setdefault((name, version), {})[entry] = flag == "x"
    programs: list[Program] = []
    for (name, version), entries in sorted(found.items()):
        usable = [e for e in ENTRIES if entries.get(e)]
        if not usable:
            listed = ", ".join(e for e in ENTRIES if e in entries)
            problems.append(
                f"skipped {name}@{version}: {listed} in {posixpath.join(root, name, version)} "
                "is not an executable file for the executor's user (chmod +x)"
            )
            continue
        path = posixpath.join(root, name, version, usable[0])
        programs.append(Program(name, version, (path,), origin=path))
    return Scan(programs, problems)


async def scan(transport: Transport, root: str) -> Scan:
    """Discover the programs below ``root`` on the transport's machine.

    Raises TransportError when the machine does not answer (the catalog keeps what it had); a root
    that does not exist is an empty catalog with a problem saying so.
    """
    if not posixpath.isabs(root):
        raise ValueError(f"the programs root must be an absolute path, not {root!r}")
    result = await transport.run(find_argv(root), timeout=FIND_TIMEOUT)
    if result.rc != 0 and not result.stdout:
        err = result.stderr.decode("utf-8", "replace").strip()
        if "No such file" in err or "Not a directory" in err:
            return Scan([], [f"the programs root {root} does not exist"])
        raise TransportError(f"listing programs below {root} failed (exit {result.rc}): {err[-500:]}")
    found = parse_find(result.stdout, root)
    if result.rc != 0:  # some subtree could not be read; what was listed still counts
        err = result.stderr.decode("utf-8", "replace").strip()
        found.problems.append(f"parts of {root} could not be listed: {err[-500:]}")
    return Scan(await _described(transport, found.programs), found.problems)


async def _described(transport: Transport, programs: Sequence[Program]) -> list[Program]:
    if not programs:
        return []
    dirs = [posixpath.dirname(p.argv[0]) for p in programs]
    probes = await transport.probe(dirs, read=[DESCRIPTION], max_read=4 * MAX_DESCRIPTION)
    out = []
    for p, probe in zip(programs, probes, strict=True):
        raw = probe.files.get(DESCRIPTION)
        text = raw.decode("utf-8", "replace").strip().splitlines() if raw else []
        description = text[0].strip()[:MAX_DESCRIPTION] if text else None
        out.append(Program(p.name, p.version, p.argv, description or None, p.origin))
    return out
