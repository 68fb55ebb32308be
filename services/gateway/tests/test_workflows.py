"""``after`` and ``/v1/workflows`` through the gateway: a workflow stored whole by the real scheduler and
shown with states and edges; cycles, unknown names and other owners' jobs refused with 422 problems."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from jobwire.gateway import GatewaySettings

from .conftest import bearer

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: GatewaySettings) -> GatewaySettings:
    """These tests assert 201 (stored by the real scheduler): give the scheduler the default 3 s, not the
    shared fixture's 0.5 s (a loaded CI machine answered an array's workflow with 202 once)."""
    return dataclasses.replace(settings, accept_timeout=3.0)


DIAMOND = {
    "name": "diamond",
    "jobs": [
        {"name": "d", "command": ["true"], "after": [{"job": "b"}, {"job": "c", "when": "finished"}]},
        {"name": "b", "command": ["true"], "after": [{"job": "a"}]},
        {"name": "c", "command": ["true"], "after": [{"job": "a"}]},
        {"name": "a", "command": ["true"]},
    ],
}


def is_problem(r, status: int) -> bool:
    return r.status_code == status and r.headers["content-type"].startswith("application/problem+json")


async def test_a_workflow_is_stored_whole_and_shown_with_states_and_edges(gateway, scheduler):
    r = await gateway.post("/v1/workflows", json=DIAMOND)
    assert r.status_code == 201, r.text
    done = r.json()
    ids = done["jobs"]
    assert set(ids) == {"a", "b", "c", "d"} and r.headers["location"] == f"/v1/workflows/{done['id']}"
    shown = (await gateway.get(f"/v1/workflows/{done['id']}")).json()
    assert shown["name"] == "diamond" and shown["owner"] == "root"
    names = [j["name"] for j in shown["jobs"]]
    assert names[0] == "a" and names[-1] == "d"  # dependencies first
    assert shown["counts"] == {"queued": 4}
    by_name = {j["name"]: j for j in shown["jobs"]}
    assert by_name["b"]["reason"] == f"waiting for {ids['a']} to succeed"
    assert by_name["d"]["reason"] == f"waiting for {ids['b']} to succeed and {ids['c']} to finish"
    edges = {(e["from"], e["to"], e["when"]) for e in shown["edges"]}
    assert edges == {
        ("a", "b", "succeeded"),
        ("a", "c", "succeeded"),
        ("b", "d", "succeeded"),
        ("c", "d", "finished"),
    }
    job_d = (await gateway.get(f"/v1/jobs/{ids['d']}")).json()
    assert job_d["after"] == [{"job": ids["b"]}, {"job": ids["c"], "when": "finished"}]
    assert job_d["state"] == "queued" and job_d["node"] is None


async def test_cycles_and_unknown_names_are_422_naming_them_and_nothing_is_sent(gateway, seed):
    cycle = {
        "jobs": [
            {"name": "a", "command": ["true"]},
            {"name": "b", "command": ["true"], "after": [{"job": "a"}, {"job": "c"}]},
            {"name": "c", "command": ["true"], "after": [{"job": "b"}]},
        ]
    }
    r = await gateway.post("/v1/workflows", json=cycle)
    assert is_problem(r, 422) and r.json()["type"].endswith("invalid-workflow")
    assert "cycle" in r.json()["detail"] and "'b'" in r.json()["detail"] and "'c'" in r.json()["detail"]
    unknown = {
        "jobs": [
            {"name": "a", "command": ["true"], "after": [{"job": "prep"}]},
            {"name": "a", "command": ["true"]},
            {"command": ["true"], "after": [{"job": "train"}]},
        ]
    }
    r = await gateway.post("/v1/workflows", json=unknown)
    assert is_problem(r, 422)
    errors = {e["path"]: e["detail"] for e in r.json()["errors"]}
    assert "'prep'" in errors["$.jobs[0].after[0].job"] and "'train'" in errors["$.jobs[2].after[0].job"]
    assert "given twice" in errors["$.jobs[1].name"] and "no name" in errors["$.jobs[2].name"]
    assert r.json()["path"] == "$.jobs[1].name"
    r = await gateway.post("/v1/workflows", json={"jobs": []})
    assert is_problem(r, 422)
    assert await seed.commands() == []


async def test_after_naming_another_owners_job_is_as_unknown_as_no_job(gateway, seed, mint):
    alice = bearer(await mint("alice"))
    bobs = await seed.job(owner="bob", state="succeeded")
    mine = await seed.job(owner="alice", state="succeeded")
    never = "0193a000-0000-7000-8000-000000000000"
    answers = {}
    for job in (bobs, never, "not-an-id"):
        r = await gateway.post("/v1/jobs", json={"command": ["true"], "after": [{"job": job}]}, headers=alice)
        assert is_problem(r, 422) and r.json()["path"] == "$.after[0].job", r.text
        answers[job] = r.json()["detail"].replace(job, "ID")
    assert len(set(answers.values())) == 1  # bob's job looks exactly like none
    batch = {"jobs": [{"command": ["true"]}, {"command": ["true"], "after": [{"job": bobs}]}]}
    r = await gateway.post("/v1/jobs:batch", json=batch, headers=alice)
    assert is_problem(r, 422) and r.json()["path"] == "$.jobs[1].after[0].job"
    wf = {"jobs": [{"name": "x", "command": ["true"], "after": [{"job": mine}, {"job": bobs}]}]}
    r = await gateway.post("/v1/workflows", json=wf, headers=alice)
    assert is_problem(r, 422) and r.json()["path"] == "$.jobs[0].after[1].job" and r.json()["jobs"] == [bobs]
    assert await seed.commands() == []
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "after": [{"job": mine}]}, headers=alice)
    assert r.status_code in (201, 202) and r.json()["after"] == [{"job": mine}]


async def test_a_workflow_is_read_only_by_its_owner(gateway, scheduler, mint):
    alice, bob = bearer(await mint("alice")), bearer(await mint("bob"))
    r = await gateway.post(
        "/v1/workflows", json={"jobs": [{"name": "x", "command": ["true"]}]}, headers=alice
    )
    assert r.status_code == 201, r.text
    wf = r.json()["id"]
    for _ in range(50):
        if (await gateway.get(f"/v1/workflows/{wf}", headers=alice)).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await gateway.get(f"/v1/workflows/{wf}", headers=alice)).json()["jobs"][0]["name"] == "x"
    assert is_problem(await gateway.get(f"/v1/workflows/{wf}", headers=bob), 404)
    assert (await gateway.get(f"/v1/workflows/{wf}")).status_code == 200  # an admin reads any
    assert is_problem(await gateway.get("/v1/workflows/0193a000-0000-7000-8000-000000000000"), 404)


async def test_after_may_name_an_own_array_but_not_another_owners(gateway, scheduler, mint):
    alice, bob = bearer(await mint("alice")), bearer(await mint("bob"))
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "array": {"count": 3}}, headers=alice)
    assert r.status_code == 201, r.text
    arr = r.json()["id"]
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "after": [{"job": arr}]}, headers=alice)
    assert r.status_code == 201 and r.json()["reason"] == f"waiting for {arr} to succeed", r.text
    r = await gateway.post("/v1/jobs", json={"command": ["true"], "after": [{"job": arr}]}, headers=bob)
    assert is_problem(r, 422) and r.json()["jobs"] == [arr]


async def test_the_openapi_document_describes_the_workflow_body(gateway):
    schema = (await gateway.get("/schema/openapi.json")).json()
    body = schema["paths"]["/v1/workflows"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["jobs"] and "after" in body["properties"]["jobs"]["items"]["properties"]
    assert "/v1/workflows/{workflow_id}" in schema["paths"]


async def test_an_array_in_a_workflow_is_waited_for_and_shown_as_one_job(gateway, scheduler):
    body = {
        "name": "sweep",
        "jobs": [
            {"name": "report", "command": ["true"], "after": [{"job": "grid"}]},
            {"name": "grid", "command": ["true"], "array": {"count": 2}},
        ],
    }
    r = await gateway.post("/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    ids = r.json()["jobs"]
    shown = (await gateway.get(f"/v1/workflows/{r.json()['id']}")).json()
    by_name = {j["name"]: j for j in shown["jobs"]}
    assert (
        by_name["grid"]["state"] == "queued" and by_name["grid"]["reason"] == "array: 0 of 2 tasks succeeded"
    )
    assert by_name["report"]["reason"] == f"waiting for {ids['grid']} to succeed"
    assert (await gateway.get(f"/v1/arrays/{ids['grid']}")).json()["count"] == 2


async def test_workflows_are_listed_newest_first_each_owner_their_own(gateway, scheduler, mint):
    alice, bob = bearer(await mint("alice")), bearer(await mint("bob"))
    mine = []
    for i in range(3):
        body = {
            "name": f"w{i}",
            "jobs": [{"name": "x", "command": ["true"]}, {"name": "y", "command": ["true"]}],
        }
        r = await gateway.post("/v1/workflows", json=body, headers=alice)
        assert r.status_code == 201, r.text
        mine.append(r.json()["id"])
    r = await gateway.post("/v1/workflows", json={"jobs": [{"name": "z", "command": ["true"]}]}, headers=bob)
    assert r.status_code == 201
    first = (await gateway.get("/v1/workflows", params={"limit": 2}, headers=alice)).json()
    assert [w["id"] for w in first["items"]] == mine[::-1][:2]
    assert first["items"][0]["name"] == "w2" and first["items"][0]["jobs"] == 2
    rest = (await gateway.get("/v1/workflows", params={"cursor": first["next_cursor"]}, headers=alice)).json()
    assert [w["id"] for w in rest["items"]] == [mine[0]] and rest["next_cursor"] is None
    assert len((await gateway.get("/v1/workflows")).json()["items"]) == 4  # an admin sees everyone's
    assert is_problem(await gateway.get("/v1/workflows", params={"cursor": "!!"}), 400)


async def test_jobs_are_listed_by_workflow_and_by_array_each_owner_their_own(gateway, scheduler, mint):
    """``GET /v1/jobs?workflow=`` and ``?array=``: the dashboard's filters, paged like every list."""
    alice, bob = bearer(await mint("alice")), bearer(await mint("bob"))
    r = await gateway.post("/v1/workflows", json=DIAMOND, headers=alice)
    assert r.status_code == 201, r.text
    wf, ids = r.json()["id"], r.json()["jobs"]
    await gateway.post("/v1/jobs", json={"command": ["true"]}, headers=alice)  # not in the workflow
    listed = (await gateway.get("/v1/jobs", params={"workflow": wf}, headers=alice)).json()
    assert sorted(j["id"] for j in listed["items"]) == sorted(ids.values())
    first = (await gateway.get("/v1/jobs", params={"workflow": wf, "limit": 3}, headers=alice)).json()
    rest = await gateway.get(
        "/v1/jobs", params={"workflow": wf, "cursor": first["next_cursor"]}, headers=alice
    )
    assert [j["id"] for j in first["items"] + rest.json()["items"]] == [j["id"] for j in listed["items"]]
    assert (await gateway.get("/v1/jobs", params={"workflow": wf}, headers=bob)).json()["items"] == []

    r = await gateway.post("/v1/jobs", json={"command": ["true"], "array": {"count": 3}}, headers=alice)
    array_id = r.json()["id"]
    made: set[str] = set()
    for _ in range(50):  # the scheduler makes tasks into jobs as capacity allows
        shown = (await gateway.get(f"/v1/arrays/{array_id}", headers=alice)).json()
        made = {t["job_id"] for t in shown.get("tasks", []) if t.get("job_id")}
        if made:
            break
        await asyncio.sleep(0.1)
    assert made
    tasks = (await gateway.get("/v1/jobs", params={"array": array_id}, headers=alice)).json()["items"]
    assert {t["id"] for t in tasks} == made
    assert all(t["array_id"] == array_id for t in tasks)
    assert (await gateway.get("/v1/jobs", params={"array": array_id}, headers=bob)).json()["items"] == []
