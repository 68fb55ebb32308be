"""GET /v1/jobs and /v1/jobs/{id}, and the problems for unknown jobs, routes and methods."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest

from jobwire.contracts import v1
from jobwire.gateway.server import serve
from tests.support.nodes import store_node

pytestmark = pytest.mark.integration


def problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    return body


async def test_get_one_job(gateway, seed):
    job_id = await seed.job(state="running", node="n1", attempt=1, labels={"team": "a"})
    r = await gateway.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 200
    job = v1.decode(r.content, v1.Job)
    assert job.id == job_id
    assert job.state is v1.JobState.RUNNING
    assert job.node == "n1"
    assert job.labels == {"team": "a"}
    assert [t.state for t in job.transitions] == [v1.JobState.RUNNING]


@pytest.mark.parametrize("job_id", [v1.new_job_id(), "not-a-uuid", "a.b"])
async def test_unknown_job_is_404(gateway, job_id):
    body = problem(await gateway.get(f"/v1/jobs/{job_id}"), 404)
    assert body["type"] == "urn:jobwire:problem:job-not-found"
    assert job_id in body["detail"]
    assert body["instance"] == f"/v1/jobs/{job_id}"


async def test_unknown_route_and_wrong_method(gateway):
    body = problem(await gateway.get("/v2/nothing"), 404)
    assert "/v2/nothing" in body["detail"]
    body = problem(await gateway.put("/v1/jobs"), 405)
    assert "PUT" in body["detail"]


async def test_list_filters(gateway, seed):
    a = await seed.job(state="queued", node="n1", name="alpha", labels={"team": "a", "gpu": "yes"})
    b = await seed.job(state="running", node="n2", name="beta", labels={"team": "a"})
    c = await seed.job(state="succeeded", node="n1", name="alpha", owner="bob", labels={"team": "b"})

    async def ids(**params) -> list[str]:
        r = await gateway.get("/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["items"]]

    newest_first = sorted([a, b, c], reverse=True)
    assert await ids() == newest_first
    assert await ids(state="queued,running") == sorted([a, b], reverse=True)
    assert await ids(state=["queued", "succeeded"]) == sorted([a, c], reverse=True)
    assert await ids(node="n1") == sorted([a, c], reverse=True)
    assert await ids(name="beta") == [b]
    assert await ids(label="team=a") == sorted([a, b], reverse=True)
    assert await ids(label=["team=a", "gpu=yes"]) == [a]
    assert await ids(owner="bob") == [c]
    assert await ids(owner="bob", state="queued") == []


async def test_pagination_walks_every_job_once(gateway, seed):
    created = [await seed.job() for _ in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await gateway.get("/v1/jobs", params=params)).json()
        assert len(page["items"]) <= 3
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("params", "detail_has"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "%%%not-a-cursor"}, "cursor"),
        ({"state": "sleeping"}, "sleeping"),
        ({"label": "novalue"}, "label"),
    ],
)
async def test_bad_list_parameters_are_400(gateway, params, detail_has):
    body = problem(await gateway.get("/v1/jobs", params=params), 400)
    assert detail_has in body["detail"]


async def test_nodes_are_listed(gateway, sessions):
    await store_node(sessions, "gpu1", "ssh", v1.NodeCapacity(slots=2, gpus=4))
    r = await gateway.get("/v1/nodes")
    assert r.status_code == 200
    [node] = r.json()["items"]
    assert node["name"] == "gpu1"
    assert node["capacity"]["gpus"] == 4


async def test_concurrent_reads_each_see_a_whole_page(gateway, seed):
    """On SQLite the gateway reads in worker threads, each on its own pooled connection: requests at
    once (more than the threads) all answer, each page whole and the same, each job with its counts."""
    ids = [await seed.job(state="queued", node="n1", name=f"j{i}") for i in range(12)]

    async def page() -> list[str]:
        r = await gateway.get("/v1/jobs", params={"state": "queued", "limit": 5})
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["items"]]

    async def one(job_id: str) -> str:
        r = await gateway.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    pages = await asyncio.gather(*(page() for _ in range(24)))
    assert all(p == sorted(ids, reverse=True)[:5] for p in pages)
    assert await asyncio.gather(*(one(i) for i in ids)) == ids
    r = await gateway.get("/v1/jobs/counts")
    assert r.json()["by_state"]["queued"] == 12


async def test_the_gateway_keeps_its_startup_heap_out_of_full_collections_while_it_serves(
    settings, clean_bus, admin_token, seed
):
    """A full collection walked every object of the started app (30-170 ms, a read's p99 at a million
    jobs); while serving they are frozen, and given back when it stops."""
    job_id = await seed.job(state="running", node="n1", attempt=1)
    async with (
        serve(settings, port=0) as url,
        httpx.AsyncClient(base_url=url, timeout=15, headers={"Authorization": f"Bearer {admin_token}"}) as c,
    ):
        frozen = gc.get_freeze_count()
        assert frozen > 20_000  # the app, its routes and schemas, the libraries' caches
        for _ in range(3):
            gc.collect()  # collections go on for what requests make, and the frozen stay frozen
            r = await c.get("/v1/jobs")
            assert r.status_code == 200 and [j["id"] for j in r.json()["items"]] == [job_id]
        assert gc.get_freeze_count() > frozen // 2  # some die by reference count; none are walked
    assert gc.get_freeze_count() == 0
