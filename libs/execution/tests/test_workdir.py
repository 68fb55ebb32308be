"""Where a job starts: the node's rule on relative and absolute workdirs (issue 12 item 5)."""

from __future__ import annotations

import pytest

from jobwire.execution.attempt.layout import AttemptDir
from jobwire.execution.executor import StartRefused
from jobwire.execution.runner.command import working_dir

pytestmark = pytest.mark.unit

D = AttemptDir.of("/srv/jw", "j1", 1)


def test_relative_workdirs_stay_inside_the_attempts_work_directory():
    assert working_dir(None, D) == "/srv/jw/jobs/j1/1/work"
    assert working_dir("a/b", D) == "/srv/jw/jobs/j1/1/work/a/b"
    assert working_dir("a//b/./c", D) == "/srv/jw/jobs/j1/1/work/a/b/c"
    for escaping in ("..", "../..", "a/../../x", "../../../../etc"):
        with pytest.raises(StartRefused, match="leaves the job's own directory"):
            working_dir(escaping, D)


def test_absolute_workdirs_need_an_allowed_root():
    with pytest.raises(StartRefused, match=r"allowed roots \(none: set JOBWIRE_EXECUTOR_WORKDIR_ROOTS\)"):
        working_dir("/scratch/alice", D)
    roots = ["/scratch", "/data/shared/"]
    assert working_dir("/scratch", D, roots) == "/scratch"
    assert working_dir("/scratch/alice//run", D, roots) == "/scratch/alice/run"
    assert working_dir("/data/shared/x", D, roots) == "/data/shared/x"
    for outside in ("/", "/etc", "/scratch-other", "/scratch/../etc", "/data/sharedx"):
        with pytest.raises(StartRefused, match="allowed roots"):
            working_dir(outside, D, roots)
