"""The command eligibility table: consistent with the transition table, and the answers the gateway
and the scheduler act on."""

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

pytestmark = pytest.mark.unit
S = v1.JobState
V = v1.Verb
Q, N = v1.Where.QUEUE, v1.Where.NODE


@pytest.mark.parametrize("rule", v1.RULES, ids=lambda r: f"{r.verb}-{r.effect}-{r.where}")
def test_every_target_state_is_reachable_by_the_transition_table(rule):
    if rule.to is None:
        return
    for state in rule.states:
        assert v1.can_transition(state, rule.to), (rule, state)


@pytest.mark.parametrize("verb", [V.CANCEL, V.HOLD, V.RELEASE])
def test_no_finished_job_takes_a_command_other_than_delete(verb):
    for state in (*v1.TERMINAL, S.LOST):
        assert v1.rule_for(verb, state) is None, (verb, state)
        assert v1.rule_for(verb, state, Q) is None


def test_every_state_can_be_deleted_and_only_runs_ask_a_node():
    for state in S:
        rule = v1.rule_for(V.DELETE, state, v1.where_of(state, dispatched=False))
        assert rule is not None, state
        expected = v1.Effect.ASK_NODE if state in v1.ON_NODE else v1.Effect.REMOVE
        assert rule.effect is expected, state


def test_held_is_cancelled_and_released_by_whoever_holds_it():
    assert v1.rule_for(V.CANCEL, S.HELD, Q).effect is v1.Effect.TRANSITION  # type: ignore[union-attr]
    assert v1.rule_for(V.CANCEL, S.HELD, N).effect is v1.Effect.ASK_NODE  # type: ignore[union-attr]
    in_queue = v1.rule_for(V.RELEASE, S.HELD, Q)
    on_node = v1.rule_for(V.RELEASE, S.HELD, N)
    assert in_queue is not None and (in_queue.effect, in_queue.to) == (v1.Effect.TRANSITION, S.QUEUED)
    assert on_node is not None and (on_node.effect, on_node.to) == (v1.Effect.ASK_NODE, S.STARTING)
    assert v1.where_of(S.HELD, dispatched=None) is None
    assert v1.where_of(S.HELD, dispatched=True) is N and v1.where_of(S.RUNNING, dispatched=False) is N


def test_holding_a_launched_run_needs_a_node_that_can_hold():
    rule = v1.rule_for(V.HOLD, S.STARTING)
    assert rule is not None and rule.needs == "hold" and hasattr(v1.NodeCapacity(slots=1), rule.needs)
    assert v1.rule_for(V.HOLD, S.RUNNING) is None
    assert v1.rule_for(V.HOLD, S.HELD).effect is v1.Effect.ALREADY  # type: ignore[union-attr]


def test_the_states_a_command_takes_read_as_the_design_says():
    assert v1.describe_states(V.CANCEL) == "queued, held, starting or running"
    assert v1.eligible_states(V.CANCEL) == v1.ACTIVE
    assert v1.describe_states(V.RELEASE) == "held"


def test_message_ids_keep_their_wire_format():
    # changing one lets a re-send through JetStream's duplicate window after an upgrade
    assert sj.command_msg_id("j1", V.CANCEL) == "j1:cancel"
    assert sj.command_msg_id("j1", V.HOLD, 3) == "j1:hold:3"
    assert sj.attempt_msg_id("j1", 2, "run") == "j1:2:run"
    assert sj.attempt_msg_id("j1", 2, "cancel", S.LOST.value) == "j1:2:cancel:lost"
    assert sj.attempt_msg_id("j1", 2, "stdout", 4096) == "j1:2:stdout:4096"
    assert sj.job_msg_id("j1", "deleted") == "j1:deleted"
