"""One suite for every registered adapter (``jobwire.hpc_schedulers``): a new adapter gets it for free."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import msgspec
import pytest

from jobwire.contracts.v1 import JobSpec, Resources
from jobwire.execution.attempt.layout import WRAPPER_SCRIPT
from jobwire.execution.executor import StartRefused
from jobwire.execution.hpc import (
    BatchRequest,
    BatchSystem,
    Phase,
    SchedulerError,
    load_scheduler,
    registered_schedulers,
)
from jobwire.execution.hpc.base import ARGS_FILE, DIRECTIVE_LINE, SETUP_FILE
from jobwire.execution.transport import ExecResult

pytestmark = pytest.mark.unit
HOSTILE = "x'; touch /tmp/pwned; echo '$(id)`id`\nnext \"q\""
#: issue 12's strings, and the same for each batch system's directive prefix
DIRECTIVES = [
    "ok\n#$ -q root.q\n#$ -o /etc/cron.d/jw",
    "hi\n#$ -t 1-50000\n#$ -l gpu=8",
    "hi\n#SBATCH --partition=root\n#SBATCH --array=1-50000",
    "hi\n#PBS -q root\n#PBS -l nodes=8:ppn=64",
    "hi\n#BSUB -q root\n#BSUB -n 64",
    "  #$ -q root.q\r\n# SBATCH --gres=gpu:8\n",
]
#: what none of them may leave in a script
INJECTED = ("root", "50000", "/etc/cron.d", "gpu=8", "gpu:8", "nodes=8", "-n 64")


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
        argv=["/bin/sh", "/shared/jobs/j/1/wrapper.sh", "/shared/jobs/j/1", "/shared/jobs/j/1/work"]
        + (spec.command or []),
        env=env or {},
        walltime=90,
    )


def with_setup(adapter: BatchSystem, spec: JobSpec, setup: str) -> JobSpec:
    """``spec`` with ``setup`` in the adapter's options, past the decode rule that refuses directive
    lines there (as an executor older than that rule, or a bug in it, would hand it on)."""
    field = adapter.options_field
    if field is None:
        return spec
    options = getattr(spec, field) or adapter.options_type()  # type: ignore[misc]
    options.setup = setup
    setattr(spec, field, options)
    return spec


def directive_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if DIRECTIVE_LINE.match(line)]


def test_registered_adapters_cover_every_scheduler():
    assert {"slurm", "slurm-rest", "sge", "torque", "pbs", "lsf"} <= set(registered_schedulers())


def test_script_has_directives_and_fixed_text_and_the_job_in_a_data_file(adapter):
    spec = JobSpec(command=["echo", "a b"], resources=Resources(memory=512 * 1024 * 1024))
    req = request_for(spec, {"EVIL": HOSTILE})
    script = adapter.build_script(req)
    assert script.startswith("#!/bin/sh\n")
    assert HOSTILE not in script and "EVIL" not in script and "a b" not in script
    assert f"/shared/jobs/j/1/{ARGS_FILE}" in script
    assert "/shared/jobs/j/1/stdout" in script
    assert "jw-" in script  # the batch name never carries user text
    items = adapter.launch_files(req)[ARGS_FILE].split(b"\0")
    assert items[-1] == b""  # every item ends with a NUL
    assert [i.decode() for i in items[:-1]] == [f"EVIL={HOSTILE}", *req.argv]


@pytest.mark.parametrize("hostile", DIRECTIVES)
def test_no_user_text_reaches_the_script_only_jobwires_directives(adapter, hostile):
    """Issue 12: SGE reads ``#$`` lines anywhere in a script, even inside quotes; SLURM, PBS and LSF
    read theirs in the header. The job's command, args, env, labels and setup are all hostile here:
    the script carries exactly the directives jobwire rendered, and none of that text."""
    spec = JobSpec(
        command=["echo", hostile],
        args=[hostile],
        env={"V": hostile},
        labels={"team": hostile},
        resources=Resources(walltime=60),
    )
    spec = with_setup(adapter, spec, "module load x\n" + hostile)
    req = request_for(spec, {"V": hostile})
    script = adapter.build_script(req)
    rendered = [adapter.render_directive(o, v) for o, v in adapter.directives(req)]
    assert directive_lines(script) == rendered
    assert not any(bad in script for bad in INJECTED), script
    files = adapter.launch_files(req)
    assert hostile.encode() in files[ARGS_FILE]
    if adapter.options_field is not None:
        assert files[SETUP_FILE] == ("module load x\n" + hostile).encode()
        assert f". /shared/jobs/j/1/{SETUP_FILE}\n" in script


def test_a_job_name_with_a_line_break_is_refused_at_decode():
    with pytest.raises(msgspec.ValidationError, match=r"\$\.name"):
        msgspec.convert({"command": ["true"], "name": "x\n#$ -q root.q"}, JobSpec)


@pytest.mark.parametrize("hostile", DIRECTIVES[:2])
def test_the_script_runs_the_job_with_its_text_as_data(adapter, hostile, tmp_path: Path):
    """The fixed script, run by /bin/sh as a batch system would: the job gets its hostile argument,
    its environment and its setup's variables byte for byte, and the script exits with its code."""
    d = tmp_path / "job"
    (d / "work").mkdir(parents=True)
    (d / "wrapper.sh").write_text(WRAPPER_SCRIPT)
    marker = tmp_path / "pwned"
    job = 'printf "[%s][%s][%s]" "$1" "$V" "$FROM_SETUP"; exit 3'
    spec = with_setup(adapter, JobSpec(command=["true"]), f"export FROM_SETUP=set\n# {hostile}")
    req = dataclasses.replace(
        request_for(spec, {"V": hostile + f"$(touch {marker})"}),
        job_dir=str(d),
        stdout=str(d / "stdout"),
        stderr=str(d / "stderr"),
        argv=["/bin/sh", str(d / "wrapper.sh"), str(d), str(d / "work"), "0", "sh", "-c", job, "sh", hostile],
    )
    script = adapter.build_script(req)
    for name, data in adapter.launch_files(req).items():
        (d / name).write_bytes(data)
    (d / "batch.sh").write_text(script)
    run = subprocess.run(
        ["/bin/sh", str(d / "batch.sh")], cwd=d, env={"PATH": os.environ["PATH"]}, check=False
    )
    assert run.returncode == 3, (d / "stderr").read_text()
    setup = "set" if adapter.options_field is not None else ""
    assert (d / "stdout").read_text() == f"[{hostile}][{hostile}$(touch {marker})][{setup}]"
    assert (d / "exit_code").read_text().strip() == "3"
    assert not marker.exists()


@pytest.mark.parametrize(
    "bad", ["debug\n#SBATCH --uid=0", "debug\n", "q; rm -rf /", "$(id)", "a b", "`id`", "#$", "a\rb"]
)
def test_option_values_that_could_break_a_directive_are_refused(adapter, bad):
    """Refused when the spec is decoded (the gateway's 422), and again by the adapter for a value
    that got past that (a node's own default queue, an older gateway)."""
    field = {"slurm-rest": "slurm", "pbs": "torque"}.get(adapter.name, adapter.name)
    opts = {"slurm": {"partition": bad}, "sge": {"queue": bad}, "torque": {"queue": bad}}
    if field not in opts:  # no job options of its own (lsf): the node's queue is checked the same way
        req = dataclasses.replace(request_for(JobSpec(command=["true"])), default_queue=bad)
    else:
        with pytest.raises(msgspec.ValidationError, match=f"\\$\\.{field}\\."):
            msgspec.convert({"command": ["true"], field: opts[field]}, JobSpec)
        spec = msgspec.convert({"command": ["true"], field: {k: "ok" for k in opts[field]}}, JobSpec)
        for k in opts[field]:
            setattr(getattr(spec, field), k, bad)
        req = request_for(spec)
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
