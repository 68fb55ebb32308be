"""Fair share between owners: which owner's job a free slot goes to.

Within one owner, ``priority`` (then submit order) decides. Between owners, the slot goes to the
owner whose *load per share* is lowest, where load is

    recent usage / (half-life / ln 2)  +  what runs now

in resource units (a CPU is 1, a GPU is ``GPU_WEIGHT``). Recent usage is resource-seconds decayed
with the configured half-life (``JOBWIRE_SCHEDULER_FAIRSHARE_HALF_LIFE``, also read as
``JOBWIRE_FAIRSHARE_HALF_LIFE``); dividing it by the mean life turns it into the same units as what
runs now (an owner that ran ``r`` units for a long time has recent usage ``r · half-life / ln 2``).
Counting what runs now as well means a round that frees many slots at once interleaves owners
instead of handing every slot to whoever had the least history; in a saturated cluster the running
loads settle where they are proportional to the shares. An owner's share is set by an admin
(``PUT /v1/quotas/{owner}`` ``{"share": 2}``; the ``*`` row is the default; 1 without either).

Everything here is in memory and updated from what the scheduler already knows (dispatch and end of
runs), so a scheduling round costs no query per job: the shares are read once per batch at most every
``SHARES_TTL`` seconds (one query for all owners).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from jobwire.contracts import v1

#: how much one GPU counts against one CPU in an owner's usage (GPUs are the scarce part)
GPU_WEIGHT = 8.0
#: on start, runs that ended within this many half-lives are read back into recent usage (>= 97% of it)
USAGE_HALF_LIVES = 5
#: how long the shares read from the quotas table are kept before they are read again (seconds)
SHARES_TTL = 2.0


def units(res: v1.Resources) -> float:
    """What one run of ``res`` costs per second on one node: CPUs plus weighted GPUs. A gang's ranks
    are one running entry per node, so its load adds up over its nodes without multiplying here."""
    return res.cpus + GPU_WEIGHT * res.gpus


@dataclass
class FairShare:
    """Decayed usage and running load per owner, and the shares that weigh them."""

    half_life: float = 3600.0
    #: owner -> resource-seconds, decayed to ``self.at``
    usage: dict[str, float] = field(default_factory=dict)
    #: owner -> resource units running now (starting or running)
    running: dict[str, float] = field(default_factory=dict)
    #: owner -> share (the ``*`` default under key ``*``); missing: 1
    shares: dict[str, float] = field(default_factory=dict)
    #: monotonic time ``usage`` was last brought up to date
    at: float | None = None
    #: monotonic time the shares were read (``SHARES_TTL``)
    shares_read: float | None = None

    def advance(self, now: float) -> None:
        """Bring usage up to ``now``: decay what was, add what ran since (the load held meanwhile)."""
        if self.at is None:
            self.at = now
            return
        dt = now - self.at
        if dt <= 0:
            return
        decay = 0.5 ** (dt / self.half_life) if self.half_life > 0 else 0.0
        for owner in set(self.usage) | set(self.running):
            value = self.usage.get(owner, 0.0) * decay + self.running.get(owner, 0.0) * dt
            if value < 1e-9 and not self.running.get(owner):
                self.usage.pop(owner, None)
            else:
                self.usage[owner] = value
        self.at = now

    def add_past(self, owner: str, units_run: float, age_end: float, age_start: float) -> None:
        """Add a run that ended ``age_end`` seconds ago after ``age_start - age_end`` seconds of
        ``units_run``, decayed as if it had been counted as it ran (on a restart: recent usage is
        read back from the jobs that ended, ``Scheduler.rebuild_usage``)."""
        if self.half_life <= 0 or age_start <= age_end:
            return
        mean_life = self.half_life / math.log(2)
        decayed = mean_life * (0.5 ** (age_end / self.half_life) - 0.5 ** (age_start / self.half_life))
        self.usage[owner] = self.usage.get(owner, 0.0) + units_run * decayed

    def share(self, owner: str) -> float:
        got = self.shares.get(owner, self.shares.get("*", 1.0))
        return got if got > 0 else 1e-6

    def load(self, owner: str, extra: float = 0.0) -> float:
        """The owner's load per share (lower goes first); ``extra``: units assumed started already."""
        mean_life = self.half_life / math.log(2) if self.half_life > 0 else 1.0
        recent = self.usage.get(owner, 0.0) / mean_life
        return (recent + self.running.get(owner, 0.0) + extra) / self.share(owner)

    def started(self, owner: str, res: v1.Resources) -> None:
        self.running[owner] = self.running.get(owner, 0.0) + units(res)

    def ended(self, owner: str, res: v1.Resources) -> None:
        left = self.running.get(owner, 0.0) - units(res)
        if left > 1e-9:
            self.running[owner] = left
        else:
            self.running.pop(owner, None)
