"""``jobwire workflow``: a workflow file is checked before it is sent, and a workflow is drawn by level."""

from __future__ import annotations

import pytest

from jobwire.client import workflow
from jobwire.client.commands import console
from jobwire.client.specs import UsageError
from jobwire.contracts import v1

pytestmark = pytest.mark.unit
S = v1.JobState


def test_a_workflow_file_with_a_cycle_or_a_typo_is_refused_before_sending(tmp_path):
    cyclic = tmp_path / "c.yaml"
    cyclic.write_text(
        "jobs:\n- {name: a, command: [x], after: [{job: b}]}\n- {name: b, command: [x], after: [{job: a}]}\n"
    )
    with pytest.raises(UsageError, match="cycle"):
        workflow.read_workflow(str(cyclic))
    typo = tmp_path / "t.yaml"
    typo.write_text("jobs:\n- {name: a, comand: [x]}\n")
    with pytest.raises(UsageError, match="comand"):
        workflow.read_workflow(str(typo))
    good = tmp_path / "g.yaml"
    good.write_text(
        "name: two\njobs:\n- {name: a, command: [x]}\n"
        "- {name: b, command: [x], after: [{job: a, when: finished}]}\n"
    )
    spec = workflow.read_workflow(str(good))
    assert spec.name == "two" and spec.jobs[1].after == [v1.Dependency(job="a", when=v1.When.FINISHED)]


def test_the_drawing_puts_each_job_one_level_below_what_it_waits_for(capsys):
    ids = {n: v1.new_job_id() for n in "abcde"}
    jobs = [
        v1.WorkflowJob(name="a", id=ids["a"], state=S.SUCCEEDED),
        v1.WorkflowJob(name="b", id=ids["b"], state=S.RUNNING),
        v1.WorkflowJob(name="c", id=ids["c"], state=S.SUCCEEDED),
        v1.WorkflowJob(name="d", id=ids["d"], state=S.QUEUED, reason=f"waiting for {ids['b']} to succeed"),
        v1.WorkflowJob(name="e", id=ids["e"], state=S.QUEUED),
    ]
    edges = [
        v1.WorkflowEdge(from_="a", to="b", when=v1.When.SUCCEEDED),
        v1.WorkflowEdge(from_="a", to="c", when=v1.When.SUCCEEDED),
        v1.WorkflowEdge(from_="b", to="d", when=v1.When.SUCCEEDED),
        v1.WorkflowEdge(from_="c", to="d", when=v1.When.FINISHED),
        v1.WorkflowEdge(from_="a", to="e", when=v1.When.FAILED),
    ]
    view = v1.WorkflowView(id="w", owner="me", name="diamond", counts={"queued": 2}, jobs=jobs, edges=edges)
    assert workflow.levels(view) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 1}
    console().print(workflow.draw(view))
    out = capsys.readouterr().out
    rows = {line.split("● ", 1)[1].split()[0]: line for line in out.splitlines() if "● " in line}
    assert rows["d"].lstrip().startswith("2") and "◀ b, c (finished)" in rows["d"]
    assert "waiting for b to succeed" in rows["d"] and ids["b"] not in rows["d"]
    assert "◀ a (failed)" in rows["e"] and "running" in rows["b"]
