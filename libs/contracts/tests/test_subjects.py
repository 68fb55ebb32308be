"""Subject tokens: a value that would change a subject's shape never reaches a NATS subject."""

from __future__ import annotations

import pytest

from jobwire.contracts.v1 import subjects as sj


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "a>", "a b", "abc\n", "abc\r\nPUB x 1", "é", "x" * 129])
def test_a_value_that_would_change_the_subject_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="may use only letters"):
        sj.event_subject(bad, "running")


def test_a_plain_id_makes_the_subject() -> None:
    assert sj.event_subject("Job_1-a", "running") == "jobwire.evt.job.Job_1-a.running"
    assert sj.log_subject("x" * 128, "stdout").startswith("jobwire.log.x")
