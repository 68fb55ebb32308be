import threading
from datetime import UTC, datetime

import msgspec
import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import codec, schemas

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)

SPEC = v1.JobSpec(
    name="train-1",
    command=["python", "train.py", "--lr", "0.1"],
    env={"SEED": "1"},
    resources=v1.Resources(cpus=2, memory="4G", gpus=1, walltime="01:30:00"),
    expected_runtime=600,
    labels={"team": "vision"},
    max_attempts=3,
    docker=v1.DockerOptions(shm_size="1G"),
)

MESSAGES = [
    v1.SubmitJob(job_id="j1", spec=SPEC, owner="alice", submitted_at=NOW),
    v1.CancelJob(job_id="j1"),
    v1.DeleteJob(job_id="j1"),
    v1.HoldJob(job_id="j1"),
    v1.ReleaseJob(job_id="j1"),
    v1.SubmitJobs(batch_id="b1", jobs=[v1.SubmitJob(job_id="j2", spec=SPEC, owner="alice")]),
    v1.RecordAudit(
        records=[v1.AuditRecord(at=NOW, action="jobs.submit", method="POST", path="/v1/jobs", status=201)]
    ),
    v1.CreateToken(
        token=v1.TokenRecord(id="tok_1", owner="alice", secret_hash="ab" * 32, scopes=[], created_at=NOW)
    ),
    v1.RevokeToken(token_id="tok_1", at=NOW),
    v1.TouchTokens(uses={"tok_1": NOW}),
    v1.RunJob(job_id="j1", attempt=2, node="n1", spec=SPEC, timeout=1200),
    v1.CancelRun(job_id="j1", attempt=2, node="n1", outcome=v1.JobState.TIMED_OUT, reason="walltime"),
    v1.RunStarting(job_id="j1", attempt=1, node="n1", at=NOW),
    v1.RunRunning(job_id="j1", attempt=1, node="n1", at=NOW, ports={"8888/tcp": "h:1"}),
    v1.RunFinished(
        job_id="j1",
        attempt=1,
        node="n1",
        at=NOW,
        outcome=v1.JobState.FAILED,
        exit_code=3,
        usage=v1.Usage(cpu_seconds=1.5),
        artifacts=[v1.Artifact(name="a.txt", size=3)],
    ),
    v1.JobTransitioned(job_id="j1", state=v1.JobState.QUEUED, previous=None, at=NOW, queue_position=0),
    v1.JobProgress(job_id="j1", attempt=1, at=NOW, progress={"step": 3, "of": 10}),
    v1.JobDeleted(job_id="j1", at=NOW),
]
UNIONS = {
    v1.SubmitJob: v1.Command,
    v1.CancelJob: v1.Command,
    v1.DeleteJob: v1.Command,
    v1.HoldJob: v1.Command,
    v1.ReleaseJob: v1.Command,
    v1.SubmitJobs: v1.Command,
    v1.RecordAudit: v1.Command,
    v1.CreateToken: v1.Command,
    v1.RevokeToken: v1.Command,
    v1.TouchTokens: v1.Command,
    v1.RunJob: v1.Work,
    v1.CancelRun: v1.Work,
    v1.RunStarting: v1.Report,
    v1.RunRunning: v1.Report,
    v1.RunFinished: v1.Report,
    v1.JobTransitioned: v1.Event,
    v1.JobProgress: v1.Event,
    v1.JobDeleted: v1.Event,
}


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip_through_their_union(msg):
    data = v1.encode(msg)
    assert v1.decode(data, UNIONS[type(msg)]) == msg


def test_sizes_and_durations_are_normalised():
    assert SPEC.resources.memory == 4 * 1024**3
    assert SPEC.resources.walltime == 5400.0
    assert SPEC.timeout_seconds() == 5400.0
    assert v1.JobSpec(command=["x"], expected_runtime=5).timeout_seconds() == 10.0
    assert v1.parse_duration("15m") == 900 and v1.parse_duration("1-00:00:01") == 86401
    assert v1.parse_size("512Mi") == 512 * 1024**2 and v1.format_hms(3725) == "01:02:05"


def test_old_readers_ignore_new_fields():
    data = b'{"type":"cancel","job_id":"j1","reason":"r","added_in_a_later_version":42}'
    assert v1.decode(data, v1.Command) == v1.CancelJob(job_id="j1", reason="r")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"command":["x"],"resources":{"cpu":2}}', "unknown field `cpu` at `$.resources`"),
        (b'{"command":["x"],"colour":"red"}', "unknown field `colour` at `$`"),
        (b'{"command":["x"],"inputs":[{"name":"a","where":"b"}]}', "`where` at `$.inputs[0]`"),
        # a struct in a list behind Annotated/Meta, the second item: the check still reaches it
        (b'{"command":["x"],"after":[{"job":"a"},{"job":"b","if":"ok"}]}', "`if` at `$.after[1]`"),
        (b'{"command":["x"],"docker":{"image_pull":1}}', "unknown field `image_pull` at `$.docker`"),
        (b'{"command":["x"],"resources":{"gpus":-1}}', "$.resources.gpus"),
        (b'{"command":["x"],"resources":{"memory":"lots"}}', "not a size"),
        (b'{"command":["x"],"script":"y"}', "exactly one of"),
        (b"{}", "exactly one of"),
        (b'{"command":[]}', "$.command"),
        (b'{"command":["x"],"env":{"JOBWIRE_JOB_ID":"1"}}', "set by jobwire"),
        (b'{"command":["x"],"env":{"1BAD":"1"}}', "$.env"),
        (b'{"program":"noversion"}', "NAME@VERSION"),
        (b'{"command":["x"],"max_attempts":0}', "$.max_attempts"),
        (b'{"command":"echo hi"}', "Expected `array | null`, got `str` - at `$.command`"),
    ],
)
def test_bad_specs_are_refused_with_a_useful_message(body, fragment):
    with pytest.raises(msgspec.ValidationError) as err:
        v1.decode_strict(body, v1.JobSpec)
    assert fragment in str(err.value)


def test_job_ids_are_uuid7_and_sort_by_creation():
    ids = [v1.new_job_id() for _ in range(5000)]  # many per millisecond
    assert all(v1.is_job_id(i) and i[14] == "7" for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_committed_schemas_match_the_code():
    rendered = schemas.render()
    on_disk = {p.name: p.read_text() for p in schemas.DEFAULT_DIR.glob("*.json")}
    assert on_disk == rendered, "schemas drifted: run `python -m jobwire.contracts.v1.schemas`"


def test_decode_stored_gives_the_same_job_and_skips_only_the_checks_already_run():
    """A stored spec decodes to the very job ``decode`` gives; the cross-field checks (run when it was
    accepted) are skipped only inside ``decode_stored``: the same bytes through ``decode`` are refused
    after it, and a decode on another thread meanwhile still checks."""
    stored = v1.encode(SPEC)
    assert v1.decode_stored(stored, v1.JobSpec) == v1.decode(stored, v1.JobSpec) == SPEC
    as_job = b'{"id":"j1",' + stored[1:]
    assert v1.decode_stored(as_job, v1.Job) == v1.decode(as_job, v1.Job)
    two = b'{"command":["true"],"script":"echo hi"}'  # never stored: refused when submitted
    assert v1.decode_stored(two, v1.JobSpec).script == "echo hi"
    with pytest.raises(msgspec.ValidationError, match="exactly one"):
        v1.decode(two, v1.JobSpec)
    with pytest.raises(msgspec.ValidationError, match="length <= 128"):  # types and limits still apply
        v1.decode_stored(b'{"command":["true"],"name":"' + b"x" * 200 + b'"}', v1.JobSpec)
    seen: list[bool] = []
    other = threading.Thread(target=lambda: seen.append(codec.decoding_stored()))
    codec._STORED.on = True  # as inside decode_stored on this thread
    try:
        other.start()
        other.join()
    finally:
        codec._STORED.on = False
    assert seen == [False]


def test_from_checked_builds_a_job_without_the_spec_checks_and_leaves_them_on():
    """A submitted job is built from its accepted spec without re-running the spec's checks (they ran
    when it was parsed); a spec built or decoded afterwards is checked again."""
    spec = v1.decode_strict(b'{"command": ["true"], "retry": {"attempts": 3}}', v1.JobSpec)
    fields = {**msgspec.structs.asdict(spec), "command": ["true"], "script": "true"}  # two things to run
    fields.update(id=v1.new_job_id(), owner="alice", created_at=datetime.now(UTC), state=v1.JobState.QUEUED)
    job = v1.from_checked(v1.Job, fields)
    assert job.script == "true" and job.max_attempts == 3
    with pytest.raises(ValueError, match="exactly one"):
        v1.Job(**fields)
    with pytest.raises(msgspec.ValidationError, match="exactly one"):
        v1.decode_strict(b'{"command": ["true"], "script": "true"}', v1.JobSpec)
