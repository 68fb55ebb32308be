"""Dependencies between jobs (Slurm's afterok / afternotok / afterany): when one is met, when it can
never be met, and what the waiting or cancelled job tells its user. Data, read by gateway, scheduler
and CLI alike, like the transition table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from itertools import islice

from .states import JobState, is_finished

S = JobState


class When(enum.StrEnum):
    """How the job named in ``after`` must end for the dependent job to run."""

    #: Slurm's afterok
    SUCCEEDED = "succeeded"
    #: Slurm's afternotok: it ended any other way (failed, timed out, cancelled, lost for good)
    FAILED = "failed"
    #: Slurm's afterany: it ended, however
    FINISHED = "finished"


_ENDED = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.LOST})

#: the end states that meet each kind of dependency; any other end means it can never be met
MEETS: dict[When, frozenset[JobState]] = {
    When.SUCCEEDED: frozenset({S.SUCCEEDED}),
    When.FAILED: _ENDED - {S.SUCCEEDED},
    When.FINISHED: _ENDED,
}

#: how each end is said in a reason ("dependency X failed", "... was cancelled")
_SAID = {
    S.SUCCEEDED: "succeeded",
    S.FAILED: "failed",
    S.CANCELLED: "was cancelled",
    S.TIMED_OUT: "timed out",
    S.LOST: "was lost",
}
_TO = {When.SUCCEEDED: "to succeed", When.FAILED: "to fail", When.FINISHED: "to finish"}
#: how many dependencies a waiting reason names before it counts the rest
SHOWN = 3


def outcome(when: When, state: JobState, *, attempts_left: bool = False) -> bool | None:
    """True: the dependency is met; False: it never can be; None: its job has not ended yet (a job
    ``lost`` with attempts left will run again)."""
    if not is_finished(state, attempts_left=attempts_left):
        return None
    return state in MEETS[when]


def waiting_reason(unmet: Mapping[str, When]) -> str:
    """``waiting for 0193… to succeed and 0194… to finish`` (the first few, then how many more)."""
    parts = [f"{job} {_TO[when]}" for job, when in islice(unmet.items(), SHOWN)]
    more = len(unmet) - SHOWN
    text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f"waiting for {text}" + (f" (and {more} more)" if more > 0 else "")


def unmet_reason(job: str, state: JobState, when: When) -> str:
    """Why a dependent job was cancelled: ``dependency 0193… failed`` (and what it needed, when the end
    was not a failure)."""
    said = f"dependency {job} {_SAID.get(state, state.value)}"
    return said if when is When.SUCCEEDED else f"{said}; this job runs only if it does not succeed"


def gone_reason(job: str) -> str:
    """Why a dependent job was cancelled when its dependency was deleted before it ended."""
    return f"dependency {job} was deleted before it ended"
