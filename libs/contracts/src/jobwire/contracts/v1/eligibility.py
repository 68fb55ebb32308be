"""Which command a job takes in which state, and what it does there: one table, read by the gateway
(to refuse at once with a 409) and by the scheduler (to act), like ``TRANSITIONS`` is.

A job in jobwire's own queue is the scheduler's alone; a job with a run on a node (starting, running,
or launched and then held by its batch system) needs that node's executor to act, so the same command
has two rows for ``held``. A new command or state is a row here, its docs and its tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .states import JobState

S = JobState


class Verb(enum.StrEnum):
    """A command on a job that exists (submit creates one and is not here)."""

    CANCEL = "cancel"
    HOLD = "hold"
    RELEASE = "release"
    DELETE = "delete"
    #: run a running or finished job again as a new attempt (Slurm's ``scontrol requeue``)
    REQUEUE = "requeue"


class Where(enum.Enum):
    """Whether a run of the job exists on a node, which decides who acts."""

    QUEUE = "queue"  # waiting in jobwire's queue, or no run at all: the scheduler acts alone
    NODE = "node"  # starting, running, or launched and held by its batch system: the executor acts


class Effect(enum.StrEnum):
    """What the scheduler does with an eligible command."""

    #: change the job's state now, in the command's own transaction
    TRANSITION = "transition"
    #: tell the node's executor; the state follows once it reports (``to`` says which)
    ASK_NODE = "ask_node"
    #: nothing: the job already is where the command would take it
    ALREADY = "already"
    #: remove the job's rows now (delete of a job without a run)
    REMOVE = "remove"


@dataclass(frozen=True)
class Rule:
    verb: Verb
    states: frozenset[JobState]
    #: None: the rule holds wherever the job is
    where: Where | None
    effect: Effect
    #: the state the job reaches: at once for TRANSITION, once the node reports for ASK_NODE
    to: JobState | None = None
    #: a ``NodeCapacity`` flag the node must have (``hold``: its backend can hold a launched run)
    needs: str | None = None

    def matches(self, state: JobState, where: Where | None) -> bool:
        return state in self.states and (self.where is None or where is None or self.where is where)


_ALL = frozenset(S)
_RUN = frozenset({S.STARTING, S.RUNNING, S.HELD})
_ENDED = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.LOST})

#: First match wins. Read per verb: from which states, where, to what effect.
RULES: tuple[Rule, ...] = (
    Rule(Verb.CANCEL, _RUN, Where.NODE, Effect.ASK_NODE, to=S.CANCELLED),
    Rule(Verb.CANCEL, frozenset({S.QUEUED, S.HELD}), Where.QUEUE, Effect.TRANSITION, to=S.CANCELLED),
    Rule(Verb.HOLD, frozenset({S.HELD}), None, Effect.ALREADY),
    Rule(Verb.HOLD, frozenset({S.QUEUED}), Where.QUEUE, Effect.TRANSITION, to=S.HELD),
    Rule(Verb.HOLD, frozenset({S.STARTING}), Where.NODE, Effect.ASK_NODE, to=S.HELD, needs="hold"),
    Rule(Verb.RELEASE, frozenset({S.HELD}), Where.QUEUE, Effect.TRANSITION, to=S.QUEUED),
    Rule(Verb.RELEASE, frozenset({S.HELD}), Where.NODE, Effect.ASK_NODE, to=S.STARTING),
    Rule(Verb.DELETE, _RUN, Where.NODE, Effect.ASK_NODE, to=S.CANCELLED),
    Rule(Verb.DELETE, _ALL, Where.QUEUE, Effect.REMOVE),
    Rule(Verb.REQUEUE, _RUN, Where.NODE, Effect.ASK_NODE, to=S.QUEUED),
    Rule(Verb.REQUEUE, _ENDED, Where.QUEUE, Effect.TRANSITION, to=S.QUEUED),
)


def where_of(state: JobState, *, dispatched: bool | None) -> Where | None:
    """Where a job in ``state`` is; ``dispatched`` says whether its current attempt was sent to a node
    (None: unknown, as to the gateway, which then gets the first rule for the state)."""
    if state in (S.STARTING, S.RUNNING):
        return Where.NODE
    if state is S.HELD:
        return None if dispatched is None else (Where.NODE if dispatched else Where.QUEUE)
    return Where.QUEUE


def rule_for(verb: Verb, state: JobState, where: Where | None = None) -> Rule | None:
    """The rule that decides ``verb`` for a job in ``state`` at ``where``; None: the command is refused."""
    for rule in RULES:
        if rule.verb is verb and rule.matches(state, where):
            return rule
    return None


def eligible_states(verb: Verb) -> frozenset[JobState]:
    """Every state from which ``verb`` does something (for messages and docs)."""
    out: frozenset[JobState] = frozenset()
    for rule in RULES:
        if rule.verb is verb:
            out |= rule.states
    return out


def describe_states(verb: Verb) -> str:
    """``'queued, held, starting or running'``: the states ``verb`` takes, in the states' order."""
    names = [s.value for s in S if s in eligible_states(verb)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
