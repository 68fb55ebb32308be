"""A GPU job sent to HPC nodes that offer no GPUs is refused at submit (issue 13), against the real stack
with SLURM, slurmrestd and SGE nodes (none configured with ``JOBWIRE_EXECUTOR_GPUS``)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm"), pytest.mark.backend("sge")]


@pytest.mark.parametrize(
    ("hints", "detail"),
    [
        ({"backend": "hpc"}, "needs 1 GPU; no node of backend hpc has GPUs"),
        ({"backend": "hpc", "cluster": "jwtest"}, "no node of backend hpc in cluster jwtest has GPUs"),
        ({"node": "hpc-sge"}, "needs 1 GPU; no node named 'hpc-sge' has GPUs"),
    ],
)
def test_a_gpu_job_to_hpc_nodes_without_gpus_is_refused(api, hints, detail):
    r = api.post("/v1/jobs", json={"command": ["nvidia-smi"], "resources": {"gpus": 1}, **hints})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert detail in body["detail"] and body["path"] == "$.resources.gpus", body


def test_the_same_job_without_a_gpu_runs_there(api):
    job = api.submit(command=["true"], node="hpc-slurm")
    assert api.wait_state(job["id"], api.END)["state"] == "succeeded"
