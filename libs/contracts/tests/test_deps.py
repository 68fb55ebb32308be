"""Dependencies and workflows as data: when a dependency is met, what the user reads, how a workflow
is ordered and refused."""

import msgspec
import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import deps, workflows

pytestmark = pytest.mark.unit
S = v1.JobState
W = v1.When


@pytest.mark.parametrize(
    ("when", "state", "met"),
    [
        (W.SUCCEEDED, S.SUCCEEDED, True),
        (W.SUCCEEDED, S.FAILED, False),
        (W.SUCCEEDED, S.CANCELLED, False),
        (W.FAILED, S.FAILED, True),
        (W.FAILED, S.TIMED_OUT, True),
        (W.FAILED, S.SUCCEEDED, False),
        (W.FINISHED, S.SUCCEEDED, True),
        (W.FINISHED, S.CANCELLED, True),
        (W.SUCCEEDED, S.RUNNING, None),
        (W.FINISHED, S.QUEUED, None),
    ],
)
def test_when_a_dependency_is_met(when, state, met):
    assert deps.outcome(when, state) is met


def test_a_lost_job_with_attempts_left_is_not_an_end_yet():
    assert deps.outcome(W.FINISHED, S.LOST, attempts_left=True) is None
    assert deps.outcome(W.SUCCEEDED, S.LOST, attempts_left=False) is False


def test_reasons_the_user_reads():
    assert deps.waiting_reason({"a1": W.SUCCEEDED}) == "waiting for a1 to succeed"
    assert deps.waiting_reason({"a1": W.SUCCEEDED, "b2": W.FINISHED}) == (
        "waiting for a1 to succeed and b2 to finish"
    )
    many = {f"j{i}": W.FAILED for i in range(5)}
    assert deps.waiting_reason(many) == "waiting for j0 to fail, j1 to fail and j2 to fail (and 2 more)"
    assert deps.unmet_reason("a1", S.FAILED, W.SUCCEEDED) == "dependency a1 failed"
    assert deps.unmet_reason("a1", S.CANCELLED, W.SUCCEEDED) == "dependency a1 was cancelled"
    assert deps.unmet_reason("a1", S.SUCCEEDED, W.FAILED).startswith("dependency a1 succeeded;")


def test_after_is_a_list_of_jobs_and_ends_and_names_each_job_once():
    spec = v1.decode_strict(
        b'{"command": ["true"], "after": [{"job": "x"}, {"job": "y", "when": "finished"}]}', v1.JobSpec
    )
    assert spec.after == [v1.Dependency(job="x"), v1.Dependency(job="y", when=W.FINISHED)]
    assert b'"after":[{"job":"x"},{"job":"y","when":"finished"}]' in v1.encode(spec)
    with pytest.raises(msgspec.ValidationError, match="names job x more than once"):
        v1.decode_strict(b'{"command": ["true"], "after": [{"job": "x"}, {"job": "x"}]}', v1.JobSpec)
    with pytest.raises(msgspec.ValidationError, match=r"after\[0\].when"):
        v1.decode_strict(b'{"command": ["true"], "after": [{"job": "x", "when": "ok"}]}', v1.JobSpec)


def workflow(*jobs):
    return v1.WorkflowSpec(
        jobs=[
            v1.JobSpec(name=n, command=["true"], after=[v1.Dependency(job=a) for a in after])
            for n, after in jobs
        ]
    )


def test_a_diamond_is_ordered_dependencies_first():
    wf = workflow(("d", ["b", "c"]), ("b", ["a"]), ("c", ["a"]), ("a", []))
    order, outside = workflows.plan(wf)
    names = [wf.jobs[i].name for i in order]
    assert names[0] == "a" and names[-1] == "d" and set(names[1:3]) == {"b", "c"}
    assert outside == set()


def test_a_cycle_is_refused_naming_its_jobs():
    wf = workflow(("a", []), ("b", ["a", "d"]), ("c", ["b"]), ("d", ["c"]))
    with pytest.raises(v1.WorkflowInvalid) as e:
        workflows.plan(wf)
    assert (
        "cycle: 'b' -> 'c' -> 'd' -> 'b'" in str(e.value)
        or "cycle: 'c' -> 'd' -> 'b' -> 'c'" in str(e.value)
        or "cycle: 'd' -> 'b' -> 'c' -> 'd'" in str(e.value)
    )
    with pytest.raises(v1.WorkflowInvalid, match="cycle: 'a' -> 'a'"):
        workflows.plan(workflow(("a", ["a"])))


def test_unknown_and_doubled_names_are_all_named():
    wf = workflow(("a", ["nope"]), ("a", []), ("b", ["zilch"]))
    with pytest.raises(v1.WorkflowInvalid) as e:
        workflows.plan(wf)
    paths = dict(e.value.problems)
    assert "'nope'" in paths["$.jobs[0].after[0].job"] and "'zilch'" in paths["$.jobs[2].after[0].job"]
    assert "given twice" in paths["$.jobs[1].name"]


def test_a_job_id_outside_the_workflow_is_returned_to_be_checked():
    outside = v1.new_job_id()
    order, ids = workflows.plan(workflow(("a", [outside])))
    assert order == [0] and ids == {outside}


def test_an_array_cannot_wait_for_other_jobs_yet():
    body = b'{"command": ["true"], "array": {"count": 2}, "after": [{"job": "x"}]}'
    with pytest.raises(msgspec.ValidationError, match="an array cannot wait"):
        v1.decode_strict(body, v1.JobSpec)
