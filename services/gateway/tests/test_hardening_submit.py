"""Issue 12's submit holes: backend options cannot ask for more than ``resources`` (the quota and
placement count only that), and out-of-range or escaping values are 422 problems naming the field."""

from __future__ import annotations

import pytest

from jobwire.contracts import v1
from jobwire.store import make_engine, quotas

from .conftest import bearer
from .test_submit import assert_problem

pytestmark = pytest.mark.integration
SPEC = {"command": ["true"], "expected_runtime": 1}


@pytest.mark.parametrize(
    ("extra", "path", "detail_has"),
    [
        ({"slurm": {"gres": "gpu:8"}}, "$.slurm.gres", "asks for 8 GPU(s)"),
        ({"slurm": {"gres": "gpu:tesla:2,mps:100"}}, "$.slurm.gres", "asks for 2 GPU(s)"),
        ({"slurm": {"setup": "module load cuda\n#SBATCH --gres=gpu:8"}}, "$.slurm.setup", "directives"),
        ({"sge": {"setup": "#$ -l gpu=8"}}, "$.sge.setup", "directives"),
        ({"torque": {"nodes": "1:ppn=64:gpus=8"}}, "$.torque.nodes", "ppn=64"),
        ({"torque": {"nodes": "1:gpus=8"}}, "$.torque.nodes", "gpus=8"),
        ({"torque": {"nodes": "4"}}, "$.torque.nodes", "4 node(s)"),
        ({"torque": {"ppn": 64}}, "$.torque.ppn", "torque.ppn 64"),
        ({"docker": {"gpu_ids": ["0", "1", "2", "3"]}}, "$.docker.gpu_ids", "names 4 GPU(s)"),
        ({"ssh": {"gpu_ids": [0, 1]}}, "$.ssh.gpu_ids", "names 2 GPU(s)"),
    ],
)
async def test_backend_options_cannot_exceed_resources(gateway, mint, seed, extra, path, detail_has):
    alice = bearer(await mint("alice"))
    await gateway.put("/v1/quotas/alice", json={"max_gpus": 1})
    r = await gateway.post("/v1/jobs", json={**SPEC, "resources": {"gpus": 1}, **extra}, headers=alice)
    assert_problem(r, 422, detail_has=detail_has, path=path)
    assert await seed.commands() == []


async def test_options_may_refine_what_resources_ask_and_quotas_count_every_node(gateway, mint, seed, db_url):
    alice = bearer(await mint("alice"))
    refined = [
        {"resources": {"gpus": 2}, "slurm": {"gres": "gpu:a100:2"}},
        {"resources": {"gpus": 1, "cpus": 8}, "torque": {"nodes": "1:ppn=8:gpus=1:fast", "ppn": 4}},
        {"resources": {"gpus": 2}, "docker": {"gpu_ids": ["1"]}},
        {"slurm": {"setup": "module load cuda  # not a #SBATCH line"}},
    ]
    for extra in refined:
        r = await gateway.post("/v1/jobs", json={**SPEC, **extra}, headers=alice)
        assert r.status_code == 202, r.text
    await gateway.put("/v1/quotas/carol", json={"max_gpus": 2})
    carol = bearer(await mint("carol"))
    # A gang's quota counts every node's GPUs: 2 on each of 2 nodes is 4, over a quota of 2
    r = await gateway.post("/v1/jobs", json={**SPEC, "resources": {"gpus": 2, "nodes": 2}}, headers=carol)
    assert_problem(r, 429, detail_has="this job asks 4")
    total = v1.Resources(gpus=2, nodes=2).gpus_total
    assert total == 4
    engine = make_engine(db_url)
    try:
        with pytest.raises(quotas.QuotaExceeded) as over:
            await quotas.admit(engine, "carol", v1.new_job_id(), gpus=total)
        assert over.value.limit == "max_gpus"
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("extra", "path", "detail_has"),
    [
        ({"resources": {"memory": "99999999999999999999P"}}, "$.resources", "at most 1 EiB"),
        ({"resources": {"walltime": "99999999:00:00"}}, "$.resources", "at most 366 days"),
        ({"resources": {"cpus": 1e-300}}, "$.resources.cpus", ">= 0.01"),
        ({"command": None, "code": {"filename": "..", "content": "x"}}, "$.code.filename", "matching"),
        ({"command": None, "code": {"filename": "-rf", "content": "x"}}, "$.code.filename", "matching"),
        ({"workdir": "/etc"}, "$.workdir", "system directory"),
        ({"workdir": "/"}, "$.workdir", "system directory"),
        ({"workdir": "/home/../etc"}, "$.workdir", "'.' or '..'"),
        ({"workdir": "../../.."}, "$.workdir", "may not leave"),
        ({"workdir": "a//b"}, "$.workdir", "may not leave"),
        ({"workdir": "a\nb"}, "$.workdir", "control characters"),
        # batch options no batch system could take (issue 16), and a name that would end a line
        ({"slurm": {"partition": "debug\n#SBATCH --uid=0"}}, "$.slurm.partition", "matching"),
        ({"slurm": {"qos": "normal\n"}}, "$.slurm.qos", "matching"),
        ({"sge": {"queue": "all.q\n#$ -q root.q"}}, "$.sge.queue", "matching"),
        ({"torque": {"ppn": 0}}, "$.torque.ppn", ">= 1"),
        ({"ssh": {"gpu_ids": [-1]}}, "$.ssh.gpu_ids[0]", ">= 0"),
        ({"name": "x\n#$ -q root.q"}, "$.name", "matching"),
    ],
)
async def test_out_of_bounds_values_are_422(gateway, seed, extra, path, detail_has):
    body = {k: v for k, v in {**SPEC, **extra}.items() if v is not None}
    r = await gateway.post("/v1/jobs", json=body)
    assert_problem(r, 422, detail_has=detail_has, path=path)
    assert await seed.commands() == []


async def test_plain_workdirs_are_accepted(gateway):
    for workdir in ("runs/today", "/home/alice/project", "/scratch/alice"):
        r = await gateway.post("/v1/jobs", json={**SPEC, "workdir": workdir})
        assert r.status_code == 202, r.text
