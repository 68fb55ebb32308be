"""The OpenAPI schema documents every problem+json answer an operation can give (issue 12, item 5)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
BODY = {"post", "put", "patch"}


async def test_every_operation_documents_its_problem_answers(gateway):
    schema = (await gateway.get("/schema/openapi.json")).json()
    missing = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            expected = {"400", "503"} | ({"404"} if "{" in path else set())
            if method in BODY:
                expected |= {"408", "413", "415", "422"}
            if path in ("/v1/jobs", "/v1/jobs/{job_id}/logs", "/v1/jobs/{job_id}/events", "/v1/events"):
                expected.add("429" if method in ("get", "post") else "400")
            if path.endswith(("/cancel", "/hold", "/release")):
                expected.add("409")
            for status in sorted(expected):
                answer = op["responses"].get(status, {})
                if PROBLEM not in answer.get("content", {}):
                    missing.append(f"{method.upper()} {path} {status}")
    assert missing == [], missing
    assert {"401", "403"} <= set(schema["paths"]["/v1/jobs"]["get"]["responses"])
    assert "401" not in schema["paths"]["/health"]["get"]["responses"]
    problem = schema["paths"]["/v1/jobs"]["post"]["responses"]["422"]["content"][PROBLEM]["schema"]
    ref = problem["$ref"].rsplit("/", 1)[-1]
    props = schema["components"]["schemas"][ref]["properties"]
    assert {"type", "title", "status", "detail", "instance"} <= set(props)


async def test_options_allow_lists_every_method_of_the_path(gateway):
    """Litestar 2 answered ``Allow: GET, OPTIONS`` for /v1/jobs, which also takes POST."""
    expected = {
        "/v1/jobs": "GET, OPTIONS, POST",
        "/v1/tokens": "GET, OPTIONS, POST",
        "/v1/jobs/x": "DELETE, GET, OPTIONS",
        "/v1/inputs/a": "DELETE, GET, OPTIONS, PUT",
        "/v1/templates/a": "DELETE, GET, OPTIONS, PUT",
    }
    for path, allow in expected.items():
        answer = await gateway.options(path)
        assert (answer.status_code, answer.headers["allow"]) == (204, allow), path


async def test_streams_downloads_and_run_time_statuses_are_documented(gateway):
    paths = (await gateway.get("/schema/openapi.json")).json()["paths"]
    logs = paths["/v1/jobs/{job_id}/logs"]["get"]["responses"]["200"]["content"]
    assert set(logs) == {"text/event-stream", "text/plain"}
    assert set(paths["/v1/events"]["get"]["responses"]["200"]["content"]) == {"text/event-stream"}
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(paths["/v1/inputs/{name}"]["get"]["responses"]["200"]["content"]) == {"*/*"}
    assert {"200", "201"} <= set(paths["/v1/inputs/{name}"]["put"]["responses"])
    assert {"201", "202"} <= set(paths["/v1/tokens"]["post"]["responses"])
    assert "content" not in paths["/v1/templates/{name}"]["delete"]["responses"]["204"]
    batch = paths["/v1/jobs:batch"]["post"]["requestBody"]
    assert batch["required"] and "application/json" in batch["content"]
    name = paths["/v1/templates/{name}"]["get"]["parameters"][0]["schema"]
    assert name["pattern"].startswith("^[A-Za-z0-9]")


async def test_token_and_quota_bodies_are_not_coerced(gateway):
    """Litestar's lax conversion took ``"admin": 0`` as false and ``"max_active": "5"`` as 5."""
    assert (await gateway.post("/v1/tokens", json={"owner": "x", "admin": 0})).status_code == 422
    assert (await gateway.post("/v1/tokens", json={"owner": "x y"})).status_code == 422
    assert (await gateway.put("/v1/quotas/x", json={"max_active": "5"})).status_code == 422
    assert (await gateway.put("/v1/quotas/x", json={"max_active": 2**40})).status_code == 422
    assert (await gateway.put("/v1/quotas/x", json={"max_active": 5.0})).json()["max_active"] == 5


async def test_a_cursor_is_the_hex_of_a_job_id(gateway, seed):
    for _ in range(3):
        await seed.job()
    first = (await gateway.get("/v1/jobs", params={"limit": 2})).json()
    cursor = first["next_cursor"]
    assert bytes.fromhex(cursor).decode() == first["items"][-1]["id"]
    rest = (await gateway.get("/v1/jobs", params={"limit": 2, "cursor": cursor})).json()
    assert len(rest["items"]) == 1
    answer = await gateway.get("/v1/jobs", params={"cursor": "MDFhMjQ5"})  # base64, as before
    assert answer.status_code == 400
