"""OpenAPI for the submit body. The handler reads raw bytes (``decode_strict`` must see unknown fields),
so Litestar cannot infer the body; we document it with msgspec's own JSON schema of ``JobSpec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from jobwire.contracts import v1


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


@cache
def job_spec_schema() -> dict[str, Any]:
    return inlined_schema(v1.JobSpec)


@cache
def inlined_schema(tp: Any) -> dict[str, Any]:
    """msgspec's JSON schema of ``tp`` with every ``$ref`` replaced by its definition."""
    raw = msgspec.json.schema(tp)
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    schema.pop("$defs", None)
    return schema


@dataclass
class JobSpecBody(Operation):
    """The submit operation, with ``JobSpec`` as its JSON request body."""

    def __post_init__(self) -> None:
        body_schema: Any = job_spec_schema()  # a plain JSON-schema dict; Litestar serialises it as is
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=body_schema)},
            required=True,
            description="A JobSpec. Unknown fields are refused (422) with their JSON path.",
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
