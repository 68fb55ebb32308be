"""The array and retry fields of JobSpec: what is accepted, what is refused, and the backoff's doubling."""

import msgspec
import pytest

from jobwire.contracts import v1

pytestmark = pytest.mark.unit


def spec(**extra: object) -> v1.JobSpec:
    return v1.decode_strict(msgspec.json.encode({"command": ["true"], **extra}), v1.JobSpec)


def test_an_array_keeps_count_parallelism_and_start():
    s = spec(array={"count": 1000, "parallelism": 50, "start": 1})
    assert s.array == v1.ArraySpec(count=1000, parallelism=50, start=1)
    assert v1.decode(v1.encode(s), v1.JobSpec).array == s.array


@pytest.mark.parametrize(
    "array", [{"count": 0}, {"count": v1.MAX_ARRAY_TASKS + 1}, {"count": 5, "parallelism": 0}, {}]
)
def test_an_array_out_of_range_is_refused(array):
    with pytest.raises(msgspec.ValidationError):
        spec(array=array)


def test_retry_sets_max_attempts_and_defaults_to_every_retryable_end():
    s = spec(retry={"attempts": 4})
    assert s.max_attempts == 4
    assert s.retry is not None and s.retry.on == ["failed", "lost", "timed_out"]


def test_retry_and_a_different_max_attempts_are_refused():
    with pytest.raises(msgspec.ValidationError, match=r"either max_attempts or retry\.attempts"):
        spec(retry={"attempts": 3}, max_attempts=5)
    assert spec(retry={"attempts": 3}, max_attempts=3).max_attempts == 3


def test_retry_on_an_unknown_end_is_refused():
    with pytest.raises(msgspec.ValidationError, match=r"retry\.on may name only"):
        spec(retry={"on": ["succeeded"]})


def test_backoff_doubles_per_attempt_and_is_capped():
    retry = v1.RetrySpec(backoff=10)
    assert [retry.delay(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert retry.delay(60) == 86400
    assert v1.RetrySpec().delay(3) == 0


def test_exit_codes_narrow_failed_only():
    retry = v1.RetrySpec(on=["failed", "timed_out"], exit_codes=[3])
    assert retry.applies("failed", 3)
    assert not retry.applies("failed", 1)
    assert retry.applies("timed_out", None)
    assert not retry.applies("lost", None)
