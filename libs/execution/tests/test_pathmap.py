"""Path mapping between the gateway's view of shared storage and the cluster's."""

from __future__ import annotations

import pytest

from jobwire.contracts.v1 import JobSpec, RunJob
from jobwire.execution.pathmap import PathEscape, PathMap

pytestmark = pytest.mark.unit

M = PathMap(
    {"/gateway/view": "/cluster/view", "/gateway/view/scratch": "/fast/scratch", "/home": "/nfs/home"}
)


@pytest.mark.parametrize(
    ("value", "mapped"),
    [
        ("/gateway/view", "/cluster/view"),
        ("/gateway/view/", "/cluster/view/"),
        ("/gateway/view/data/in.csv", "/cluster/view/data/in.csv"),
        ("/gateway/view/data/dir/", "/cluster/view/data/dir/"),
        ("/gateway/view/a/../b", "/cluster/view/b"),
        ("/gateway/view//a/./b", "/cluster/view/a/b"),
        ("/gateway/view/scratch/x", "/fast/scratch/x"),  # the longest prefix wins
        ("/gateway/viewer/x", "/gateway/viewer/x"),  # not on a component boundary
        ("/gateway/vie", "/gateway/vie"),
        ("relative/gateway/view/x", "relative/gateway/view/x"),
        ("--in=/gateway/view/x", "--in=/gateway/view/x"),  # only values that start with a prefix
        ("x /gateway/view/y", "x /gateway/view/y"),
        ("//gateway/view/x", "//gateway/view/x"),
        ("/home/alice/run.sh", "/nfs/home/alice/run.sh"),
        ("/homework", "/homework"),
        ("", ""),
    ],
)
def test_values_that_start_with_a_prefix_are_mapped(value: str, mapped: str) -> None:
    assert M.map(value) == mapped


@pytest.mark.parametrize(
    "value",
    ["/gateway/view/..", "/gateway/view/../etc/passwd", "/gateway/view/a/../../x", "/home/../root/.ssh"],
)
def test_dot_dot_out_of_the_prefix_is_refused(value: str) -> None:
    with pytest.raises(PathEscape, match="leaves the shared directory"):
        M.map(value, "args[0]")


def test_inside_the_scratch_prefix_dot_dot_may_not_climb_into_its_parent() -> None:
    with pytest.raises(PathEscape, match="/gateway/view/scratch"):
        M.map("/gateway/view/scratch/../secret")


def test_a_job_spec_has_workdir_command_args_and_env_mapped() -> None:
    spec = JobSpec(
        command=["/gateway/view/bin/tool", "--flag"],
        args=["/gateway/view/in.csv", "plain", "a;b $(x)"],
        workdir="/gateway/view/work",
        env={"DATA": "/gateway/view/data", "OTHER": "/opt/x", "TEXT": "see /gateway/view"},
    )
    run = M.run(RunJob(job_id="j", attempt=1, node="n", spec=spec))
    s = run.spec
    assert s.command == ["/cluster/view/bin/tool", "--flag"]
    assert s.args == ["/cluster/view/in.csv", "plain", "a;b $(x)"]
    assert s.workdir == "/cluster/view/work"
    assert s.env == {"DATA": "/cluster/view/data", "OTHER": "/opt/x", "TEXT": "see /gateway/view"}
    assert spec.args[0] == "/gateway/view/in.csv"  # the original is left alone


def test_a_program_spec_keeps_its_program_and_an_empty_map_changes_nothing() -> None:
    spec = JobSpec(program="NEWAVE@v28.16.4", args=["/home/a/deck"])
    assert M.spec(spec).program == "NEWAVE@v28.16.4"
    assert M.spec(spec).args == ["/nfs/home/a/deck"]
    empty = PathMap()
    assert not empty and empty.spec(spec) is spec


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ({"relative": "/x"}, "absolute"),
        ({"/x": "y"}, "absolute"),
        ({"/": "/x"}, "root"),
        ({"/x": "/"}, "root"),
        ([("/x", "/a"), ("/x/", "/b")], "twice"),
    ],
)
def test_bad_maps_are_refused_at_start(pairs: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PathMap(pairs)  # type: ignore[arg-type]
