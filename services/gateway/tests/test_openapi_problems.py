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
