"""Catalog programs and path mapping through the real stack onto the real SLURM (node ``hpc-slurm``)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import connect
from jobwire.runtime.settings import BusSettings

from .conftest import ECHO_ARGS, GATEWAY_VIEW

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm")]

HOSTILE = [
    "a b",
    "q'uote",
    'd"q',
    "semi;colon",
    "$(touch /tmp/jw-pwned)",
    "`touch /tmp/jw-pwned`",
    "new\nline",
]


def test_a_discovered_program_runs_with_hostile_args_inert_and_paths_mapped(api, programs):
    j = api.submit(
        node="hpc-slurm",
        program="ECHOARGS@v1.2",
        args=[*HOSTILE, f"{GATEWAY_VIEW}/data/in.csv", "--x=/gateway/view/kept"],
        workdir=f"{GATEWAY_VIEW}/work",
        resources={"walltime": 120},
    )
    done = api.wait_state(j["id"], api.END)
    assert (done["state"], done["exit_code"]) == ("succeeded", 0), done
    expected = (
        f"cwd={programs.shared}/work\n"
        + "".join(f"<{a}>\n" for a in HOSTILE)
        + f"<{programs.shared}/data/in.csv>\n<--x=/gateway/view/kept>\n"
    )
    assert api.logs(j["id"], "stdout") == expected
    assert not os.path.exists("/tmp/jw-pwned")


def test_programs_are_listed_and_a_configured_one_runs_its_argv(api):
    r = api.get("/v1/programs", params={"node": "hpc-slurm"})
    assert r.status_code == 200, r.text
    got = {p["id"]: p for p in r.json()["items"]}
    assert {"ECHOARGS@v1.2", "SHOWARGS@1"} <= set(got)
    assert got["ECHOARGS@v1.2"]["description"] == "prints its working directory and each argument"
    assert got["ECHOARGS@v1.2"]["cluster"] == "jwtest"
    j = api.submit(cluster="jwtest", program="SHOWARGS@1", args=["a b", "$(id)", "`id`"])
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "succeeded", done
    assert api.logs(j["id"], "stdout") == "a b|$(id)|`id`|"


def test_an_unknown_program_is_refused_by_the_gateway_and_by_the_executor(api, stack):
    r = api.post("/v1/jobs", json={"backend": "hpc", "node": "hpc-slurm", "program": "ECHOARGS@v9"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    assert "known versions of ECHOARGS: v1.2" in r.json()["detail"]

    # Any NATS client may submit: the executor refuses what its catalog lacks, with the same kind of reason.
    job_id = v1.new_job_id()
    spec = v1.JobSpec(backend="hpc", node="hpc-slurm", program="ECHOARGS@v9", args=["x"])

    async def publish() -> None:
        bus = await connect(BusSettings(nats_url=stack.nats_url), name="test-programs")
        try:
            command = v1.SubmitJob(
                job_id=job_id, spec=spec, owner="anonymous", submitted_at=datetime.now(UTC)
            )
            await bus.publish(sj.cmd_subject("submit"), command, msg_id=job_id)
        finally:
            await bus.close()

    asyncio.run(publish())
    api.wait_for(lambda: api.get(f"/v1/jobs/{job_id}").status_code == 200, 30, what="the job stored")
    done = api.wait_state(job_id, api.END)
    assert done["state"] == "failed", done
    assert done["reason"].startswith(
        "program 'ECHOARGS@v9' is not in the catalog of cluster 'jwtest'; known versions of ECHOARGS: v1.2"
    ), done


def test_a_path_that_climbs_out_of_the_shared_view_is_refused(api):
    j = api.submit(node="hpc-slurm", program="ECHOARGS@v1.2", args=[f"{GATEWAY_VIEW}/../../etc/passwd"])
    done = api.wait_state(j["id"], api.END)
    assert done["state"] == "failed" and "leaves the shared directory /gateway/view" in done["reason"], done


def test_a_new_version_is_discovered_by_the_rescan(api, programs):
    run = programs.root / "ECHOARGS" / "v1.10" / "run"
    run.parent.mkdir()
    run.write_text(ECHO_ARGS)
    run.chmod(0o755)

    def versions() -> list[str]:
        items = api.get("/v1/programs", params={"name": "ECHOARGS", "node": "hpc-slurm"}).json()["items"]
        return [p["version"] for p in items]

    assert api.wait_for(lambda: versions() == ["v1.2", "v1.10"], 15, what="v1.10 in the catalog")
    j = api.submit(node="hpc-slurm", program="ECHOARGS@v1.10", args=["ok"])
    assert api.logs(api.wait_state(j["id"], "succeeded")["id"], "stdout").endswith("<ok>\n")
