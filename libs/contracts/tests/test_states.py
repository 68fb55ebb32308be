import itertools

import pytest

from jobwire.contracts.v1 import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    Verb,
    can_transition,
    check_transition,
    eligible_states,
    is_finished,
)

pytestmark = pytest.mark.unit
S = JobState

LEGAL = {
    (S.QUEUED, S.STARTING),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.HELD),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),
    (S.HELD, S.QUEUED),
    (S.HELD, S.CANCELLED),
    # a launched batch job held in its batch system: released, or ended/lost while held
    (S.HELD, S.STARTING),
    (S.HELD, S.FAILED),
    (S.HELD, S.LOST),
    (S.STARTING, S.HELD),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.SUCCEEDED),
    (S.STARTING, S.FAILED),
    (S.STARTING, S.CANCELLED),
    (S.STARTING, S.TIMED_OUT),
    (S.STARTING, S.LOST),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.TIMED_OUT),
    (S.RUNNING, S.LOST),
    (S.LOST, S.QUEUED),
    # requeue: a run or an end queued again, as a new attempt
    (S.STARTING, S.QUEUED),
    (S.RUNNING, S.QUEUED),
    (S.SUCCEEDED, S.QUEUED),
    (S.FAILED, S.QUEUED),
    (S.CANCELLED, S.QUEUED),
    (S.TIMED_OUT, S.QUEUED),
}


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_every_legal_transition_is_accepted(current, target):
    check_transition(current, target)
    assert can_transition(current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in itertools.product(S, S) if p not in LEGAL])
def test_every_illegal_transition_is_rejected(current, target):
    with pytest.raises(IllegalTransition) as err:
        check_transition(current, target)
    assert current.value in str(err.value) and target.value in str(err.value)


def test_table_covers_every_state_and_terminal_states_are_left_only_by_a_requeue():
    assert set(TRANSITIONS) == set(S)
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset({S.QUEUED})
    assert not (eligible_states(Verb.CANCEL) & TERMINAL)


def test_lost_is_finished_only_without_attempts_left():
    assert is_finished(S.LOST) and not is_finished(S.LOST, attempts_left=True)
    assert is_finished(S.SUCCEEDED, attempts_left=True)
    assert not is_finished(S.RUNNING)
