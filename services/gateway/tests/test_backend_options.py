"""``backend_options`` are checked at submit against the schemas the candidate nodes publish: a bad
option is a 422 naming the field, although the gateway knows no backend's options."""

from __future__ import annotations

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1.options import schema_of
from tests.support import nodes as stored_nodes

from .test_submit import assert_problem

pytestmark = pytest.mark.integration


async def store_node(sessions, name: str, backend: str, options: type | None) -> None:  # type: ignore[no-untyped-def]
    capacity = v1.NodeCapacity(slots=4, cpus=4, options_schema=schema_of(options) if options else None)
    await stored_nodes.store_node(sessions, name, backend, capacity)


@pytest.fixture
async def nodes(sessions):  # type: ignore[no-untyped-def]
    """Registered before the gateway starts, so its node snapshot has them."""
    await store_node(sessions, "cluster1", "hpc", v1.SlurmOptions)
    await store_node(sessions, "dock1", "docker", v1.DockerOptions)
    await store_node(sessions, "local1", "local", None)


@pytest.mark.parametrize(
    ("options", "named", "path"),
    [
        ({"partition": 7}, "expected string", "$.backend_options.partition"),
        ({"partiton": "debug"}, "unknown option", "$.backend_options.partiton"),
        # rules beyond types (issue 16): what no batch system could take is refused here, not at sbatch
        ({"partition": "debug\n#SBATCH --uid=0"}, "matching", "$.backend_options.partition"),
        ({"account": "a b"}, "matching", "$.backend_options.account"),
        ({"setup": "x" * 65537}, "at most 65536 characters", "$.backend_options.setup"),
    ],
)
async def test_a_bad_option_is_422_naming_the_field(nodes, gateway, seed, options, named, path):
    r = await gateway.post(
        "/v1/jobs", json={"command": ["true"], "backend": "hpc", "backend_options": options}
    )
    assert_problem(r, 422, detail_has=named, path=path)
    assert await seed.commands() == []


async def test_options_that_fit_a_candidate_are_submitted(nodes, gateway, seed):
    # no backend named: they fit the hpc node's schema, not docker's or local's, and that is enough
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "backend_options": {"partition": "debug"}})
    assert r.status_code in (201, 202), r.text
    [msg] = await seed.commands()
    assert v1.decode(msg.data, v1.Command).spec.backend_options == {"partition": "debug"}  # type: ignore[union-attr]


async def test_a_backend_without_options_refuses_them(nodes, gateway, seed):
    r = await gateway.post(
        "/v1/jobs", json={"command": ["true"], "node": "local1", "backend_options": {"x": 1}}
    )
    assert_problem(r, 422, detail_has="takes no backend_options")


@pytest.mark.parametrize(
    ("options", "resources", "named", "path"),
    [
        ({"gres": "gpu:8"}, {}, "asks for 8 GPU(s)", "$.backend_options.gres"),
        ({"setup": "module load x\n#SBATCH --gres=gpu:8"}, {}, "directives", "$.backend_options.setup"),
    ],
)
async def test_options_asking_more_than_resources_are_422_as_the_fields_are(
    nodes, gateway, seed, options, resources, named, path
):
    """The rules that hold the ``slurm`` field to ``resources`` (issue 12 item 3) hold the same options
    given as ``backend_options`` (before: 202, and the executor failed the start)."""
    body = {"command": ["true"], "backend": "hpc", "backend_options": options, "resources": resources}
    r = await gateway.post("/v1/jobs", json=body)
    assert_problem(r, 422, detail_has=named, path=path)
    assert await seed.commands() == []
    ok = {**body, "backend_options": {"setup": "module load cuda  # not a #SBATCH line", "gres": "gpu:0"}}
    assert (await gateway.post("/v1/jobs", json=ok)).status_code in (201, 202)
