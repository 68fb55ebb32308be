"""Subject tokens: a value that would change a subject's shape never reaches a NATS subject."""

from __future__ import annotations

import msgspec
import pytest

from jobwire.contracts.v1 import subjects as sj


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "a>", "a b", "abc\n", "abc\r\nPUB x 1", "é", "x" * 129])
def test_a_value_that_would_change_the_subject_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="may use only letters"):
        sj.event_subject(bad, "running")


def test_a_plain_id_makes_the_subject() -> None:
    assert sj.event_subject("Job_1-a", "running") == "jobwire.evt.job.Job_1-a.running"
    assert sj.log_subject("x" * 128, "stdout").startswith("jobwire.log.x")


@pytest.mark.parametrize(
    "body",
    [
        b'{"command":["true"],"name":"x\\n"}',
        b'{"command":["true"],"env":{"A\\n":"1"}}',
        b'{"command":["true"],"labels":{"k\\n":"1"}}',
        b'{"command":["true"],"image":"busybox","docker":{"network":"net\\n"}}',
        b'{"command":["true"],"image":"busybox","docker":{"user":"1000\\n"}}',
        b'{"command":["true"],"image":"busybox","docker":{"gpu_ids":["0\\n"]}}',
    ],
)
def test_a_name_with_a_trailing_newline_is_refused(body: bytes) -> None:
    # Python's `$` also matches before a final newline: every anchored pattern ends in `$(?!\n)`
    from jobwire.contracts import v1

    with pytest.raises(msgspec.ValidationError):
        v1.decode(body, v1.JobSpec)
