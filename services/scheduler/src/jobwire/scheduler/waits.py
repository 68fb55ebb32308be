"""Jobs that wait for their dependencies (``after``): for which jobs, and who waits on whom.

Held in memory like the node queues, and rebuilt from the database on start (``Waits.rebuild``): a
queued or held job waits for every dependency whose job has not ended. When jobs end, the pipeline
looks their dependents up here, so resolving a batch of ended jobs costs one query for the dependents'
rows, never one per job (``Core.resolve``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobwire.contracts import v1
from jobwire.contracts.v1 import deps


@dataclass
class Waits:
    #: waiting job -> {dependency job -> how it must end}, for the dependencies not met yet
    unmet: dict[str, dict[str, v1.When]] = field(default_factory=dict)
    #: dependency job -> jobs waiting on it
    dependents: dict[str, set[str]] = field(default_factory=dict)

    def add(self, job_id: str, unmet: Mapping[str, v1.When]) -> None:
        self.drop(job_id)
        self.unmet[job_id] = dict(unmet)
        for dep in unmet:
            self.dependents.setdefault(dep, set()).add(job_id)

    def drop(self, job_id: str) -> None:
        """The job waits for nothing any more (it ended, was deleted, or all it needed is met)."""
        for dep in self.unmet.pop(job_id, {}):
            waiting = self.dependents.get(dep)
            if waiting is not None:
                waiting.discard(job_id)
                if not waiting:
                    del self.dependents[dep]

    def met(self, job_id: str, dep: str) -> bool:
        """Record ``dep`` as met for ``job_id``; True when that was the last thing it waited for."""
        unmet = self.unmet.get(job_id)
        if unmet is None:
            return False
        unmet.pop(dep, None)
        waiting = self.dependents.get(dep)
        if waiting is not None:
            waiting.discard(job_id)
            if not waiting:
                del self.dependents[dep]
        if unmet:
            return False
        del self.unmet[job_id]
        return True

    def waiting_on(self, ended: Iterable[str]) -> set[str]:
        """Every job that waits on one of ``ended``."""
        out: set[str] = set()
        for dep in ended:
            out |= self.dependents.get(dep, set())
        return out

    def reason(self, job_id: str) -> str | None:
        unmet = self.unmet.get(job_id)
        return deps.waiting_reason(unmet) if unmet else None


def still_unmet(after: list[v1.Dependency], ended: Mapping[str, bool]) -> dict[str, v1.When]:
    """On a restart: the dependencies of an active job whose jobs have not ended (``ended`` maps each
    dependency that still exists to whether its job ended). A dependency that ended, or whose job is
    gone, was resolved when it ended (a broken one cancelled the job in that same transaction)."""
    return {d.job: d.when for d in after if d.job in ended and not ended[d.job]}
