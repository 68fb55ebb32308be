"""The placement policy plugin interface (entry point group ``jobwire.placement``): which eligible
node a job waits on. In a lib, so a policy shipped elsewhere depends on this, not on the scheduler.

The scheduler filters nodes by the hard rules first (``contracts.v1.feasibility``); a policy only
ranks what is left, reading what :class:`Candidate` offers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sized
from typing import ClassVar, Protocol, TypeVar

from jobwire.contracts.v1 import JobSpec, Resources


class Candidate(Protocol):
    """What a policy may read of a node (the scheduler's view of it)."""

    @property
    def name(self) -> str: ...

    @property
    def running(self) -> Sized: ...

    @property
    def queued(self) -> Sized: ...

    def queued_time(self, now: float, res: Resources) -> float:
        """Seconds of expected work ahead of a job asking ``res`` there, over the slots it would get."""
        ...


N = TypeVar("N", bound=Candidate)


class PlacementPolicy(ABC):
    name: ClassVar[str] = ""

    @abstractmethod
    def choose(self, spec: JobSpec, nodes: list[N], now: float) -> N | None:
        """The node to queue on, among nodes already known eligible; None keeps the job pending."""
