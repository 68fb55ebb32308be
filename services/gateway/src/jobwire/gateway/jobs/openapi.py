"""OpenAPI for the submit body (JSON, or the ``multipart/form-data`` form of ``form.FIELDS``).
The handler reads raw bytes (``decode_strict`` must see unknown fields),
so Litestar cannot infer the body; we document it with msgspec's own JSON schema of ``JobSpec``, tightened
with the rules ``JobSpec.__post_init__`` checks in code: unknown fields refused at every level, exactly
one of what to run, the program's ``NAME@VERSION`` shape, no NUL in arguments or env values, env names
jobwire reserves, and the shapes of sizes and durations (their bounds, the node feasibility and the
backend options a node publishes stay rules of the server: a 422 names them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from litestar.enums import ParamType
from litestar.openapi.spec import (
    Encoding,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from jobwire.contracts import v1
from jobwire.contracts.v1 import spec as contract

from . import form

#: ``templates.service.NAME``
TEMPLATE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$(?!\n)"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace ``$ref``s by their definitions: the spec is not recursive, and inlined it needs no
    components (Litestar regenerates those and would drop ours)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


#: what ``units.parse_size`` and ``units.parse_duration`` read (a size's bound is checked in code)
SIZE_TEXT = r"^\s*[0-9]+(\.[0-9]+)?\s*[kmgtpeKMGTPE]?[iI]?[bB]?\s*$"
DURATION_TEXT = r"^\s*([0-9]+(\.[0-9]+)?\s*[smhdSMHD]|([0-9]+-)?[0-9]+(:[0-9]+){0,2})\s*$"
NO_NUL = r"^[^\x00]*$"
RUNS = ("command", "script", "program", "code")


def _no_unknown_fields(node: Any) -> None:
    """``decode_strict`` refuses unknown fields of every struct, nested ones too."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
        for value in node.values():
            _no_unknown_fields(value)
    elif isinstance(node, list):
        for value in node:
            _no_unknown_fields(value)


def _size(maximum: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": maximum},
            {"type": "string", "pattern": SIZE_TEXT},
            {"type": "null"},
        ]
    }


def _tighten(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    props["program"]["anyOf"][0]["pattern"] = contract.PROGRAM_ID.pattern
    props["command"]["anyOf"][0]["items"]["pattern"] = NO_NUL
    props["args"]["items"]["pattern"] = NO_NUL
    props["env"]["additionalProperties"]["pattern"] = NO_NUL
    props["env"]["propertyNames"]["not"] = {"pattern": f"^{contract.RESERVED_ENV_PREFIX}"}
    resources = props["resources"]["properties"]
    resources["memory"] = _size(contract.MAX_MEMORY)
    resources["walltime"] = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": contract.MAX_WALLTIME},
            {"type": "string", "pattern": DURATION_TEXT},
            {"type": "null"},
        ]
    }
    props["docker"]["anyOf"][0]["properties"]["shm_size"] = _size(contract.MAX_MEMORY)


@cache
def inlined_schema(tp: Any) -> dict[str, Any]:
    """msgspec's JSON schema of ``tp`` with every ``$ref`` replaced by its definition."""
    raw = msgspec.json.schema(tp)
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    schema.pop("$defs", None)
    return schema


@cache
def partial_spec_schema() -> dict[str, Any]:
    """A JobSpec's fields with its rules, none required: what a template holds."""
    schema = copy.deepcopy(inlined_schema(v1.JobSpec))
    _no_unknown_fields(schema)
    _tighten(schema)
    return schema


@cache
def job_spec_schema() -> dict[str, Any]:
    """A whole JobSpec: exactly one of ``command``, ``script``, ``program`` or ``code`` (null = not given)."""
    schema = copy.deepcopy(partial_spec_schema())
    schema["oneOf"] = [{"required": [run], "properties": {run: {"not": {"type": "null"}}}} for run in RUNS]
    return schema


@cache
def submit_schema() -> dict[str, Any]:
    """What ``POST /v1/jobs`` takes: a JobSpec, or a template's name with fields that override it."""
    templated = copy.deepcopy(partial_spec_schema())
    templated["title"] = "TemplatedJobSpec"
    templated["description"] = "A stored template (`PUT /v1/templates/{name}`) with overrides"
    templated["properties"]["template"] = {"type": "string", "pattern": TEMPLATE_NAME}
    templated["required"] = ["template"]
    return {"anyOf": [job_spec_schema(), templated]}


@cache
def form_schema() -> dict[str, Any]:
    """The ``multipart/form-data`` submit's fields, from the table the parser reads (``form.FIELDS``):
    files as binary strings, the rest as text; no other field is accepted (400/422 naming it)."""
    props: dict[str, Any] = {}
    for field in form.FIELDS.values():
        prop: dict[str, Any] = {"type": "string", "description": field.description}
        if field.file:
            prop["format"] = "binary"
        props[field.name] = prop
    return {
        "type": "object",
        "title": "JobSpecForm",
        "description": "`curl -F code=@train.py -F spec=@job.yaml`; a field given both in `spec` and "
        "on its own is a 422, and the result is validated as a JobSpec",
        "properties": props,
        "additionalProperties": False,
    }


def form_encoding() -> dict[str, Encoding]:
    """Each part's media types, as ``form.FIELDS`` states them."""
    return {f.name: Encoding(content_type=f.content_types) for f in form.FIELDS.values()}


IDEMPOTENCY_HELP = "A retry with the same key returns the same job"
IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    schema=Schema(type=OpenAPIType.STRING, description=IDEMPOTENCY_HELP),
    description=IDEMPOTENCY_HELP,
    required=False,
)


def raw_header(scope: Any, name: bytes) -> str | None:
    """The first header ``name`` (lower case) from the ASGI scope's raw headers, as Litestar decodes one."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


@dataclass
class JobSpecBody(Operation):
    """The submit operation, with ``JobSpec`` as its JSON request body and its ``Idempotency-Key`` header
    (read by the handler from the raw headers, ``raw_header``)."""

    def __post_init__(self) -> None:
        self.parameters = [IDEMPOTENCY_KEY, *(self.parameters or [])]
        body_schema: Any = submit_schema()  # a plain JSON-schema dict; Litestar serialises it as is
        form_body: Any = form_schema()
        self.request_body = RequestBody(
            content={
                "application/json": OpenAPIMediaType(schema=body_schema),
                "multipart/form-data": OpenAPIMediaType(schema=form_body, encoding=form_encoding()),
            },
            required=True,
            description=(
                "A JobSpec, or `template` with overrides; or a form with a code file and a YAML or "
                "JSON spec. Unknown fields are refused (422) with their JSON path."
            ),
        )


@dataclass
class WorkflowSpecBody(Operation):
    """The workflow submit operation, with ``WorkflowSpec`` as its JSON request body."""

    def __post_init__(self) -> None:
        body_schema: Any = inlined_schema(v1.WorkflowSpec)
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=body_schema)},
            required=True,
            description="A WorkflowSpec: named JobSpecs whose `after` names each other. Unknown fields are "
            "refused (422) with their JSON path.",
        )
