"""One suite for every registered adapter (``jobwire.hpc_schedulers``): a new adapter gets it for free."""

from __future__ import annotations

import dataclasses
import shlex

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, Resources
from jobwire.execution.executor import StartRefused
from jobwire.execution.hpc import (
    BatchRequest,
    BatchSystem,
    Phase,
    SchedulerError,
    load_scheduler,
    registered_schedulers,
)
from jobwire.execution.transport import ExecResult

pytestmark = pytest.mark.unit
HOSTILE = "x'; touch /tmp/pwned; echo '$(id)`id`\nnext \"q\""


@pytest.fixture(params=registered_schedulers())
def adapter(request: pytest.FixtureRequest) -> BatchSystem:
    return load_scheduler(request.param)()


def request_for(spec: JobSpec, env: dict[str, str] | None = None) -> BatchRequest:
    return BatchRequest(
        job_id="01a2b3c4-0000-7000-8000-000000000001",
        attempt=1,
        spec=spec,
        job_dir="/shared/jobs/j/1",
        stdout="/shared/jobs/j/1/stdout",
        stderr="/shared/jobs/j/1/stderr",
        body="/bin/sh /shared/jobs/j/1/wrapper.sh " + shlex.quote("a b"),
        env=env or {},
        walltime=90,
    )


def test_registered_adapters_cover_every_scheduler():
    assert {"slurm", "slurm-rest", "sge", "torque", "pbs", "lsf"} <= set(registered_schedulers())


def test_script_has_directives_env_quoted_and_body(adapter):
    spec = JobSpec(command=["true"], resources=Resources(memory=512 * 1024 * 1024))
    script = adapter.build_script(request_for(spec, {"EVIL": HOSTILE}))
    assert script.startswith("#!/bin/sh\n")
    assert f"export EVIL={shlex.quote(HOSTILE)}\n" in script
    assert script.rstrip().endswith("wrapper.sh 'a b'")
    assert "/shared/jobs/j/1/stdout" in script
    assert "jw-" in script  # the batch name never carries user text


@pytest.mark.parametrize("bad", ["debug\n#SBATCH --uid=0", "q; rm -rf /", "$(id)", "a b", "`id`"])
def test_option_values_that_could_break_a_directive_are_refused(adapter, bad):
    field = {"slurm-rest": "slurm", "pbs": "torque"}.get(adapter.name, adapter.name)
    opts = {"slurm": {"partition": bad}, "sge": {"queue": bad}, "torque": {"queue": bad}}
    if field not in opts:  # no job options of its own (lsf): the node's queue is checked the same way
        req = dataclasses.replace(request_for(JobSpec(command=["true"])), default_queue=bad)
    else:
        req = request_for(msgspec.convert({"command": ["true"], field: opts[field]}, JobSpec))
    with pytest.raises(StartRefused):
        adapter.build_script(req)


def test_submit_list_and_accounting_take_many_ids_in_one_command(adapter):
    ids = [str(i) for i in range(1, 301)]
    argv = adapter.build_list(ids)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert adapter.build_accounting(ids, 0.0)
    assert adapter.build_kill("7")[-1].endswith("7")
    submit = adapter.build_submit("/shared/jobs/j/1/batch.sh")
    assert adapter.script_on_stdin or any("/shared/jobs/j/1/batch.sh" in a for a in submit)


def test_failed_submit_raises(adapter):
    with pytest.raises(SchedulerError):
        adapter.parse_submit(ExecResult(1, b"", b"refused"))


def test_empty_list_means_everything_left(adapter):
    empty = {"sge": b"<job_info/>", "slurm-rest": b'{"jobs": []}\n200'}.get(adapter.name, b"")
    assert adapter.parse_list(ExecResult(0, empty, b""), ["1"]) == {}


def test_state_mapping_is_total(adapter):
    for native in ("PENDING", "RUNNING", "COMPLETED", "qw", "r", "z", "Q", "R", "C", "", "???"):
        assert isinstance(adapter.map_state(native), Phase)


def test_hold_and_release_where_supported(adapter):
    if adapter.supports_hold:
        assert adapter.build_hold("5") and adapter.build_release("5")
