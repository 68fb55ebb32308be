"""The ``multipart/form-data`` submit is in the OpenAPI schema with exactly the fields the parser reads
(issue 12, item 5): a form built from the schema's field list is accepted, a field it does not list or
a body that is not a form is a 422 problem+json."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"
FORM = "multipart/form-data"
#: a valid value for the named fields; every other listed field is a JobSpec scalar
VALUES: dict[str, bytes] = {
    "code": b"print('from the form')\n",
    "spec": b"labels: {via: form}\n",
    "config_file": b"project_id: vision\n",
    "expected_time": b"600",
    "expected_runtime": b"300",
    "name": b"from-a-form",
}


async def _form(gateway: Any) -> dict[str, Any]:
    body = (await gateway.get("/schema/openapi.json")).json()["paths"]["/v1/jobs"]["post"]["requestBody"]
    assert {"application/json", FORM} <= set(body["content"])
    return dict(body["content"][FORM])


async def test_the_schema_lists_the_form_and_its_file_fields(gateway) -> None:
    form = await _form(gateway)
    schema = form["schema"]
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert "required" not in schema  # the JobSpec the form makes is what must be whole
    assert (props["code"]["type"], props["code"]["format"]) == ("string", "binary")
    assert {"spec", "config_file", "expected_time", "command", "resources"} <= set(props)
    assert all("format" not in p for name, p in props.items() if name != "code")
    assert "application/yaml" in form["encoding"]["spec"]["contentType"]
    assert set(form["encoding"]) == set(props)


async def test_a_form_built_from_the_schema_fields_is_accepted(gateway) -> None:
    props = (await _form(gateway))["schema"]["properties"]
    files: dict[str, Any] = {}
    for name in ("code", "spec", "config_file", "expected_time", "name"):
        value = VALUES[name]
        binary = props[name].get("format") == "binary"
        files[name] = ("train.py", value, "text/x-python") if binary else (None, value)
    r = await gateway.post("/v1/jobs", files=files)
    assert r.status_code in (201, 202), r.text
    job = r.json()
    assert job["code"]["filename"] == "train.py"
    assert job["expected_runtime"] == 600
    assert job["labels"] == {"via": "form", "project_id": "vision"}
    assert job["name"] == "from-a-form"


async def test_every_listed_field_is_one_the_parser_reads(gateway) -> None:
    """Each field of the schema, sent alone, is never refused as unknown (the parser and the schema
    read one table); its value may still be a 422 for the JobSpec's own rules."""
    props = (await _form(gateway))["schema"]["properties"]
    refused = []
    for name, prop in props.items():
        value = VALUES.get(name, b"x")
        part = ("f.txt", value, "text/plain") if prop.get("format") == "binary" else (None, value)
        r = await gateway.post("/v1/jobs", files={name: part})
        assert r.status_code in (201, 202, 422), (name, r.status_code, r.text)
        if r.status_code == 422 and "unknown form field" in r.json()["detail"]:
            refused.append(name)
    assert refused == []


@pytest.mark.parametrize(
    ("files", "detail"),
    [
        ({"nonsense": (None, b"1")}, "unknown form field `nonsense`"),
        ({"code": (None, b"print(1)")}, "must be a file upload"),
        ({"spec": (None, b"- a list")}, "must be a mapping"),
        ({"expected_runtime": (None, b"[unclosed")}, "not a valid YAML value"),
    ],
)
async def test_a_form_the_schema_does_not_allow_is_a_problem(gateway, files, detail) -> None:
    r = await gateway.post("/v1/jobs", files=files)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert detail in r.json()["detail"]


async def test_a_body_that_is_not_a_form_is_a_problem(gateway) -> None:
    r = await gateway.post(
        "/v1/jobs", content=b"not a form", headers={"content-type": "multipart/form-data; boundary=zzz"}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "boundary" in r.json()["detail"]
