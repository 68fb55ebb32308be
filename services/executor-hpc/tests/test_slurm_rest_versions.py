"""slurm-rest across API versions v0.0.38-v0.0.41 (SLURM 22.05, 23.02, 23.11, 24.05/24.11), on the
samples in tests/data (their sources are in tests/data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobwire.contracts.v1 import JobSpec, JobState, Resources, SlurmOptions
from jobwire.execution.hpc import BatchRequest, Phase, SchedulerError
from jobwire.execution.transport import ExecResult
from jobwire.executor_hpc.schedulers.slurm import Slurm
from jobwire.executor_hpc.schedulers.slurm_rest import SlurmRest, job_description
from jobwire.executor_hpc.schedulers.slurm_rest_formats import (
    DIALECTS,
    VERSIONS,
    choose_version,
    exit_code,
    number,
    state_of,
)

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"
#: release recorded for each version newer than 22.05's v0.0.38
RELEASES = {"v0.0.39": "23.02", "v0.0.40": "23.11", "v0.0.41": "24.05"}
NEW = list(RELEASES)


def rest(name: str) -> ExecResult:
    return ExecResult(0, (DATA / name).read_bytes() + b"\n200", b"")


def at(version: str) -> SlurmRest:
    return SlurmRest(options={"version": version})


@pytest.mark.parametrize("version", NEW)
def test_queue_states_reasons_and_nodes(version):
    q = at(version).parse_list(
        rest(f"slurmrestd-{RELEASES[version]}-{version}-jobs.json"),
        [str(i) for i in range(101, 108)] + ["99"],
    )
    assert "99" not in q
    seen = {i: (e.native, e.phase, e.reason, e.nodes) for i, e in q.items()}
    assert seen["101"] == ("PENDING", Phase.QUEUED, "Priority", [])
    assert seen["102"] == ("PENDING", Phase.HELD, "JobHeldUser", [])
    assert seen["103"] == ("PENDING", Phase.HELD, "JobHeldAdmin", [])
    assert seen["104"] == ("RUNNING", Phase.RUNNING, None, ["cn[1-2]"])
    assert seen["105"][:2] == ("COMPLETING", Phase.RUNNING)  # ["RUNNING", "COMPLETING"] from v0.0.40
    assert seen["106"][:2] == ("COMPLETED", Phase.DONE)
    assert seen["107"][:3] == ("FAILED", Phase.DONE, "NonZeroExitCode")


@pytest.mark.parametrize("version", NEW)
def test_find_by_names_with_separators_quotes_and_commas(version):
    res = rest(f"slurmrestd-{RELEASES[version]}-{version}-jobs.json")
    s = at(version)
    assert s.parse_find(res, 'wait|for "input", then run') == ["101"]
    assert s.parse_find(res, "run^^^ning; echo $(id)") == ["104"]
    assert s.parse_find(res, "wait") == []


@pytest.mark.parametrize("version", NEW)
def test_accounting_states_exit_codes_and_usage(version):
    ids = [str(i) for i in range(201, 209)]
    a = at(version).parse_accounting(rest(f"slurmrestd-{RELEASES[version]}-db{version}-jobs.json"), ids)
    ok, failed, timeout, oom, cancelled, node_fail, pending, running = (a[i] for i in ids)
    assert (ok.native, ok.exit_code, ok.outcome, ok.final) == ("COMPLETED", 0, None, True)
    assert ok.usage.cpu_seconds == pytest.approx(58.412)
    assert ok.usage.max_rss_bytes == 10432 * 1024 and ok.usage.io_read_bytes == 2 * 1024 * 1024
    assert (ok.usage.wall_seconds, ok.usage.node_list) == (61.0, ["cn1"])
    assert (failed.native, failed.exit_code, failed.outcome) == ("FAILED", 3, None)
    assert failed.usage.max_rss_bytes == 3088 * 1024
    assert (timeout.outcome, timeout.native, timeout.usage.wall_seconds) == (
        JobState.TIMED_OUT,
        "TIMEOUT",
        3614.0,
    )
    assert timeout.usage.max_rss_bytes == 991288 * 1024
    assert (oom.outcome, oom.exit_code) == (JobState.FAILED, 137) and "OUT_OF_MEMORY" in (oom.reason or "")
    assert oom.usage.max_rss_bytes == 2 * 1024**3
    assert (cancelled.outcome, cancelled.exit_code) == (JobState.CANCELLED, 143)
    assert cancelled.usage.max_rss_bytes is None  # no TRES usage recorded
    assert (node_fail.outcome, node_fail.final, node_fail.usage.node_list) == (JobState.FAILED, True, ["cn3"])
    assert "NODE_FAIL" in (node_fail.reason or "")
    assert (pending.final, pending.exit_code, pending.usage.node_list) == (False, None, None)
    assert (running.native, running.final, running.exit_code) == ("RUNNING", False, None)


def test_v0038_accounting_exit_codes_are_left_to_the_exit_code_file():
    a = at("v0.0.38").parse_accounting(rest("slurmrestd-22.05-dbv0.0.38-jobs.json"), ["1"])
    assert (a["1"].native, a["1"].exit_code) == ("FAILED", None)


@pytest.mark.parametrize(
    ("release", "expected"),
    [("22.05", "v0.0.38"), ("23.02", "v0.0.39"), ("23.11", "v0.0.40"), ("24.05", "v0.0.41")],
)
def test_version_detection_from_openapi_paths(release, expected):
    paths = json.loads((DATA / f"slurmrestd-{release}-openapi-v3-paths.json").read_text())["paths"]
    assert choose_version(paths) == expected


def test_detection_needs_both_slurm_and_slurmdb_and_refuses_unknown_versions():
    assert (
        choose_version(["/slurm/v0.0.41/jobs/", "/slurmdb/v0.0.40/jobs/", "/slurm/v0.0.40/jobs"]) == "v0.0.40"
    )
    assert choose_version(["/slurm/v0.0.42/jobs/", "/slurmdb/v0.0.42/jobs/"]) is None
    with pytest.raises(SchedulerError, match=r"v0\.0\.37"):
        SlurmRest(options={"version": "v0.0.37"})


async def test_prepare_picks_the_newest_common_version_and_config_overrides_it():
    class OpenApi:
        """Answers the one request prepare makes: the server's OpenAPI document (24.05 excerpt)."""

        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        async def run(self, argv: list[str], **_: Any) -> ExecResult:
            self.calls.append(argv)
            return rest("slurmrestd-24.05-openapi-v3-paths.json")

    t = OpenApi()
    s = SlurmRest(options={"token": "t" * 30})
    await s.prepare(t)  # type: ignore[arg-type]
    assert s.version == "v0.0.41" and t.calls[0][-1].endswith("/openapi/v3")
    assert s.build_list(["1"])[-1].endswith("/slurm/v0.0.41/jobs")
    assert s.build_accounting(["1"], 0)[-1].endswith("/slurmdb/v0.0.41/jobs")
    pinned = SlurmRest(options={"token": "t" * 30, "version": "v0.0.39"})
    await pinned.prepare(t)  # type: ignore[arg-type]
    assert pinned.version == "v0.0.39" and len(t.calls) == 1  # configured: no detection request


def _request() -> BatchRequest:
    return BatchRequest(
        job_id="j",
        attempt=1,
        spec=JobSpec(
            command=["true"],
            resources=Resources(memory=2 * 1024**3, gpus=2),
            slurm=SlurmOptions(partition="debug"),
        ),
        job_dir="/s/j",
        stdout="/s/j/stdout",
        stderr="/s/j/stderr",
        argv=["true"],
        walltime=90,
    )


def _conforms(value: Any, kind: str) -> bool:
    return {
        "string": lambda: isinstance(value, str),
        "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
        "object of strings": lambda: (
            isinstance(value, dict) and all(isinstance(x, str) for x in value.values())
        ),
        "array of strings": lambda: isinstance(value, list) and all(isinstance(x, str) for x in value),
        "number object {set, infinite, number}": lambda: (
            isinstance(value, dict) and set(value) == {"set", "infinite", "number"} and value["set"] is True
        ),
    }[kind]()


@pytest.mark.parametrize("version", VERSIONS)
def test_submit_body_has_the_documented_shape(version):
    shapes = json.loads((DATA / "slurmrestd-job-submit-shapes.json").read_text())
    want = shapes["versions"][version]
    directives = Slurm().directives(_request())
    script = Slurm().build_script(_request(), directives)
    body = DIALECTS[version].submit_body(job_description(directives), script)
    assert sorted(body) == sorted(want["top_level"])
    job = body["job"]
    for key, value in job.items():
        assert key in want["job"], f"{version} sends {key}, which its job_desc_msg lacks"
        assert _conforms(value, shapes["types"][want["job"][key]]), (version, key, value)
    assert (job.get("script") or body.get("script")) == script
    assert number(job["time_limit"]) == 2 and number(job["memory_per_node"]) == 2048
    # the GPU request sbatch gets as --gres=gpu:2 (the old script round trip dropped it)
    assert "#SBATCH --gres=gpu:2\n" in script
    assert job.get("gres", job.get("tres_per_node")) == ("gpu:2" if version == "v0.0.38" else "gres/gpu:2")
    env = job["environment"]
    assert (env if isinstance(env, list) else [f"{k}={v}" for k, v in env.items()]) == [
        "PATH=/usr/local/bin:/usr/bin:/bin"
    ]


def test_the_body_of_the_version_in_use_is_written_beside_the_script_and_posted():
    s = SlurmRest(options={"token": "t" * 30, "version": "v0.0.40"})
    directives = s.directives(_request())
    script = s.build_script(_request(), directives)
    files = s.submit_files(_request(), directives, script)
    assert list(files) == [".json"]
    body = json.loads(files[".json"])
    assert "script" not in body and body["job"]["script"] == script
    assert body["job"]["environment"] == ["PATH=/usr/local/bin:/usr/bin:/bin"]
    assert body["job"]["tres_per_node"] == "gres/gpu:2"
    assert "@/s/j/job.sh.json" in s.build_submit("/s/j/job.sh")
    assert (
        s.parse_submit(ExecResult(0, b'{"job_id": 42, "step_id": "batch", "errors": []}\n200', b"")) == "42"
    )


def test_decoders_accept_every_shape():
    assert [number(x) for x in (5, {"set": True, "infinite": False, "number": 5})] == [5, 5]
    assert number({"set": False, "infinite": False, "number": 0}) is None
    assert number({"set": True, "infinite": True, "number": 0}) is None
    assert [state_of(x) for x in ("PENDING", ["PENDING"], ["COMPLETED", "REQUEUED"], [], "")] == [
        "PENDING",
        "PENDING",
        "REQUEUED",
        "UNKNOWN",
        "UNKNOWN",
    ]
    assert exit_code(3) == 3
    assert (
        exit_code({"status": "SIGNALED", "return_code": 0, "signal": {"signal_id": 9, "name": "KILL"}}) == 137
    )
    assert (
        exit_code({"status": ["PENDING"], "return_code": {"set": False, "infinite": False, "number": 0}})
        is None
    )
