"""A node's program catalog: configured and discovered programs, resolved by ``NAME@VERSION``.

Configured entries (a file the operator writes) win over discovered ones with the same id, so an
operator can pin how one version starts. Discovery is re-run by :meth:`Catalog.refresh`; a scan that
fails keeps the last good result, so a login node that does not answer for a minute does not empty
the catalog under queued jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from jobwire.contracts.v1 import programs as pv
from jobwire.contracts.v1.programs import version_key

from ..executor import StartRefused

log = logging.getLogger(__name__)
#: how many names a refusal lists at most (a catalog can be large)
MAX_LISTED = 20


@dataclass(frozen=True)
class Program:
    """One runnable program: the job's ``args`` are appended to ``argv`` (never through a shell)."""

    name: str
    version: str
    argv: tuple[str, ...]
    description: str | None = None
    #: ``configured`` or the entry script's path it was discovered from
    origin: str = "configured"

    def __post_init__(self) -> None:
        pv.check_part(self.name, "program name")
        pv.check_part(self.version, "program version")
        if not self.argv or not self.argv[0] or any("\0" in a for a in self.argv):
            raise ValueError(f"program {self.id}: its command must be a non-empty argv without NUL bytes")

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


class ProgramNotFound(StartRefused):
    """The job names a program this node's catalog does not have."""


@dataclass(frozen=True)
class Scan:
    """What one discovery pass found, and what it skipped (with why, for the log)."""

    programs: list[Program]
    problems: list[str]


Scanner = Callable[[], Awaitable[Scan]]


class Catalog:
    """The programs one node offers; ``scanner`` (discovery) is optional."""

    def __init__(
        self,
        cluster: str,
        *,
        configured: Sequence[Program] = (),
        scanner: Scanner | None = None,
        interval: float = 300.0,
    ) -> None:
        self.cluster = cluster
        self.scanner = scanner
        #: seconds between two discovery passes
        self.interval = interval
        self._configured = _by_id(configured, "configured")
        self._discovered: dict[str, Program] = {}
        self._problems: list[str] = []
        #: time.time() of the last successful scan (None: never scanned)
        self.scanned_at: float | None = None
        self.changed_at = datetime.now(UTC)

    @property
    def programs(self) -> dict[str, Program]:
        """Every program by id; configured entries over discovered ones."""
        return {**self._discovered, **self._configured}

    async def refresh(self) -> bool:
        """Discover again; True when the set of programs changed. Errors keep the last good result."""
        if self.scanner is None:
            self.scanned_at = self.scanned_at or time.time()
            return False
        before = self.programs
        try:
            scan = await self.scanner()
        except Exception as e:
            log.warning("discovering programs failed; keeping the last %d: %s", len(self._discovered), e)
            return False
        if scan.problems != self._problems:
            for problem in scan.problems:
                log.warning("program catalog: %s", problem)
        self._problems = scan.problems
        self._discovered = _by_id(scan.programs, "discovered")
        self.scanned_at = time.time()
        changed = self.programs != before
        if changed:
            self.changed_at = datetime.now(UTC)
            log.info("program catalog of %s: %d programs", self.cluster, len(self.programs))
        return changed

    def resolve(self, pid: str) -> Program:
        """The program ``NAME@VERSION``; ProgramNotFound says what this cluster has instead."""
        found = self.programs.get(pid)
        if found is not None:
            return found
        name = pid.partition("@")[0]
        where = f"program {pid!r} is not in the catalog of cluster {self.cluster!r}"
        versions = sorted((p.version for p in self.programs.values() if p.name == name), key=version_key)
        if versions:
            raise ProgramNotFound(f"{where}; known versions of {name}: {_listed(versions)}")
        names = sorted({p.name for p in self.programs.values()})
        offers = f"it offers {_listed(names)}" if names else "it offers no programs"
        raise ProgramNotFound(f"{where}; {offers}")

    def message(self, node: str) -> pv.ProgramCatalog:
        """What the node publishes (ids, names, descriptions; never how a program is started)."""
        entries = [
            pv.ProgramEntry(name=p.name, version=p.version, description=p.description)
            for p in sorted(self.programs.values(), key=lambda p: (p.name, version_key(p.version)))
        ]
        return pv.ProgramCatalog(node=node, cluster=self.cluster, at=datetime.now(UTC), programs=entries)


def _by_id(programs: Iterable[Program], what: str) -> dict[str, Program]:
    out: dict[str, Program] = {}
    for p in programs:
        if p.id in out:
            log.warning("%s program %s is listed twice; the first one counts", what, p.id)
            continue
        out[p.id] = p
    return out


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown}, ... ({len(items)} in all)"
