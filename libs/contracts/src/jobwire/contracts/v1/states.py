"""Job states and the one transition table every service checks against."""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    QUEUED = "queued"
    HELD = "held"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"


S = JobState

#: FROM state -> the states it may move to. Data, so it reads at a glance.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.STARTING, S.RUNNING, S.HELD, S.CANCELLED, S.FAILED}),
    # ``queued`` again from a run or an end: a requeue (Slurm's ``scontrol requeue``), a new attempt
    # held in jobwire's queue (back to queued), or a launched batch job held in its batch system
    # (back to starting when released; it keeps its node slot, so it can fail or be lost there)
    S.HELD: frozenset({S.QUEUED, S.STARTING, S.CANCELLED, S.FAILED, S.LOST}),
    S.STARTING: frozenset(
        {S.RUNNING, S.HELD, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.LOST, S.QUEUED}
    ),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.LOST, S.QUEUED}),
    S.LOST: frozenset({S.QUEUED}),
    S.SUCCEEDED: frozenset({S.QUEUED}),
    S.FAILED: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
    S.TIMED_OUT: frozenset({S.QUEUED}),
}

#: States a job never leaves on its own (``lost`` leaves only by a retry; any of them by a requeue).
TERMINAL: frozenset[JobState] = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT})
#: States in which a job still occupies, or waits for, a node.
ACTIVE: frozenset[JobState] = frozenset({S.QUEUED, S.HELD, S.STARTING, S.RUNNING})
#: States in which a job holds a slot on its node.
ON_NODE: frozenset[JobState] = frozenset({S.STARTING, S.RUNNING})


class IllegalTransition(ValueError):
    """A state change the transition table does not allow."""

    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"a job cannot go from {current.value!r} to {target.value!r}")
        self.current = current
        self.target = target


def can_transition(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: JobState, target: JobState) -> None:
    """Raise IllegalTransition unless ``current -> target`` is in the table."""
    if not can_transition(current, target):
        raise IllegalTransition(current, target)


def is_finished(state: JobState, *, attempts_left: bool = False) -> bool:
    """True when nothing more will happen to the job (``lost`` counts once no attempt is left)."""
    return state in TERMINAL or (state is S.LOST and not attempts_left)
