"""What the handlers' signatures cannot tell Litestar, added to the OpenAPI document it built.

Litestar infers parameters, bodies and answers from type hints; it cannot see a rule checked in code (a
template's or an input's name, ``label=KEY=VALUE``, a cursor), a body read as raw bytes (submit, batch,
templates, inputs), a streamed answer's media types (SSE, text, downloads), or a success status chosen
at run time (``201`` for a new input, ``202`` while the scheduler is away). Each is written down here
once, next to the code that enforces it, and the Schemathesis run in ``make test`` holds the two together:
a request the schema allows must not be refused, one it forbids must be, and every answer must be
documented.
"""

from __future__ import annotations

from typing import Any

import msgspec

from jobwire.contracts import v1
from jobwire.store import tokens

from .auth.controllers import QuotaLimits, TokenRequest
from .jobs.batch import MAX_BATCH
from .jobs.openapi import TEMPLATE_NAME, job_spec_schema, partial_spec_schema
from .jobs.submit import MAX_IDEMPOTENCY_KEY
from .params import MAX_SEQUENCE

Schema = dict[str, Any]

_SEGMENT = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
#: ``contracts.v1.check_input_name``: up to 8 segments, 255 characters
INPUT_NAME: Schema = {"type": "string", "maxLength": 255, "pattern": f"^{_SEGMENT}(/{_SEGMENT}){{0,7}}$"}
_STATE = "|".join(s.value for s in v1.JobState)
#: ``jobs.schemas.parse_states``: each value a comma list of states, blanks skipped
STATE_LIST = rf"^\s*({_STATE})?\s*(,\s*({_STATE})?\s*)*$"
#: ``store.queries.decode_cursor``: the hex of a job id (ASCII letters, digits and ``-``)
CURSOR = "^(2d|3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]){1,36}$"
#: ``sse.resume_after``: a stream sequence, or blank
LAST_EVENT_ID = r"^[ \t]*([0-9]{1,18})?[ \t]*$"
#: ``jobs.submit.check_idempotency_key``: printable characters (HTTP trims a value's outer blanks)
_KEY_CHAR = "\\x21-\\x7e\\xa1-\\xac\\xae-\\xff"
IDEMPOTENCY_KEY = f"^[{_KEY_CHAR}]([ {_KEY_CHAR}]{{0,{MAX_IDEMPOTENCY_KEY - 2}}}[{_KEY_CHAR}])?$"
#: a path below the job's directory: anything but only slashes
FILE_PATH = "[^/]"

BINARY: Schema = {"type": "string", "format": "binary"}
TEXT: Schema = {"type": "string"}

#: (path, parameter) -> the schema of that parameter, for every method of the path
PARAMETERS: dict[tuple[str, str], Schema] = {
    ("/v1/jobs", "label"): {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
    ("/v1/jobs/counts", "label"): {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
    ("/v1/jobs", "state"): {"type": "array", "items": {"type": "string", "pattern": STATE_LIST}},
    ("/v1/jobs", "cursor"): {"type": "string", "pattern": CURSOR},
    ("/v1/workflows", "cursor"): {"type": "string", "pattern": CURSOR},
    ("/v1/arrays/{array_id}", "cursor"): {"type": "string", "pattern": r"^[0-9]{1,10}$(?!\n)"},
    ("/v1/arrays/{array_id}", "state"): {"type": "array", "items": {"type": "string", "pattern": STATE_LIST}},
    ("/v1/jobs", "Idempotency-Key"): {"type": "string", "pattern": IDEMPOTENCY_KEY},
    # Litestar drops a bound of 0 from an optional parameter
    ("/v1/jobs", "wait"): {"type": "number", "minimum": 0, "maximum": 3600},
    ("/v1/jobs/{job_id}/logs", "Last-Event-ID"): {"type": "string", "pattern": LAST_EVENT_ID},
    ("/v1/jobs/{job_id}/events", "Last-Event-ID"): {"type": "string", "pattern": LAST_EVENT_ID},
    ("/v1/events", "Last-Event-ID"): {"type": "string", "pattern": LAST_EVENT_ID},
    ("/v1/templates/{name}", "name"): {"type": "string", "pattern": TEMPLATE_NAME},
    ("/v1/inputs/{name}", "name"): INPUT_NAME,
    ("/v1/jobs/{job_id}/files/{path}", "path"): {"type": "string", "pattern": FILE_PATH},
    ("/v1/jobs/{job_id}/files/{path}", "limit"): {"type": "integer", "minimum": 0, "maximum": MAX_SEQUENCE},
}


def _struct(struct: type[msgspec.Struct]) -> Schema:
    """A body struct as msgspec describes it (``forbid_unknown_fields``: no other field)."""
    exact: Schema = msgspec.json.schema(struct)["$defs"][struct.__name__]
    exact["additionalProperties"] = False
    return exact


def _token_request() -> Schema:
    schema = _struct(TokenRequest)
    schema["properties"]["scopes"]["anyOf"][0]["items"] = {"enum": list(tokens.SCOPES)}
    return schema


_RAW = {"application/octet-stream": {"schema": BINARY}}
#: (method, path) -> request bodies the handler reads itself
BODIES: dict[tuple[str, str], Schema] = {
    ("post", "/v1/jobs:batch"): {
        "required": True,
        "description": f'`{{"jobs": [JobSpec, ...]}}` or a JSON array of 1 to {MAX_BATCH} JobSpecs',
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {
                                    "type": "array",
                                    "items": job_spec_schema(),
                                    "minItems": 1,
                                    "maxItems": MAX_BATCH,
                                }
                            },
                            "required": ["jobs"],
                            "additionalProperties": False,
                        },
                        {"type": "array", "items": job_spec_schema(), "minItems": 1, "maxItems": MAX_BATCH},
                    ]
                }
            }
        },
    },
    ("put", "/v1/templates/{name}"): {
        "required": True,
        "description": "The JobSpec fields the template fixes (what to run may be left out)",
        "content": {"application/json": {"schema": partial_spec_schema()}},
    },
    ("post", "/v1/tokens"): {"required": True, "content": {"application/json": {"schema": _token_request()}}},
    ("put", "/v1/quotas/{owner}"): {
        "required": True,
        "content": {"application/json": {"schema": _struct(QuotaLimits)}},
    },
    ("put", "/v1/inputs/{name}"): {
        "required": False,
        "description": "The input's bytes, stored as sent",
        "content": _RAW,
    },
}

#: one server-sent event as clients parse it (``sse.sse_response`` writes ``id``, ``event``, ``data``)
SSE_EVENT: Schema = {
    "type": "object",
    "properties": {"id": TEXT, "event": TEXT, "data": TEXT, "retry": {"type": "integer"}},
}
_SSE = {"text/event-stream": {"schema": SSE_EVENT}}
_ANY: dict[str, Schema] = {"*/*": {"schema": {}}}
#: (method, path) -> the success answers' media types, replacing Litestar's guess (JSON)
MEDIA: dict[tuple[str, str], dict[str, Schema]] = {
    ("get", "/metrics"): {"text/plain": {"schema": TEXT}},
    ("get", "/v1/events"): _SSE,
    ("get", "/v1/jobs/{job_id}/events"): _SSE,
    ("get", "/v1/jobs/{job_id}/logs"): {**_SSE, "text/plain": {"schema": TEXT}},
    # downloads carry the media type their name suggests, else application/octet-stream
    ("get", "/v1/inputs/{name}"): _ANY,
    ("get", "/v1/jobs/{job_id}/artifacts/{name}"): _ANY,
    ("get", "/v1/jobs/{job_id}/files/{path}"): _ANY,
}

#: (method, path, status) -> a success status the handler picks at run time, described like ``like``
EXTRA_SUCCESS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("put", "/v1/inputs/{name}", "201"): ("200", "Created: there was no input of this name"),
    ("post", "/v1/tokens", "202"): ("201", "Queued: works once the scheduler has stored it"),
    ("delete", "/v1/tokens/{token_id}", "202"): ("200", "Queued: refused here at once, everywhere soon"),
}


def _nullable(param: Schema) -> bool:
    """Litestar reads a query parameter's ``null`` as "not given" and documents it so; a header's
    ``null`` is the text itself."""
    options = param.get("schema", {}).get("oneOf", [])
    return param["in"] == "query" and any(option.get("type") == "null" for option in options)


def _parameters(op: Schema, path: str) -> None:
    for param in op.get("parameters", []):
        schema = PARAMETERS.get((path, param["name"]))
        if schema is None:
            continue
        old = param.get("schema", {})
        new = {"oneOf": [schema, {"type": "null"}]} if _nullable(param) else dict(schema)
        if old.get("description"):
            new["description"] = old["description"]
        param["schema"] = new


def _answers(op: Schema, method: str, path: str) -> None:
    responses: Schema = op["responses"]
    for (m, p, status), (like, description) in EXTRA_SUCCESS.items():
        if (m, p) == (method, path):
            responses[status] = {**responses[like], "description": description}
    media = MEDIA.get((method, path))
    for status, answer in responses.items():
        if status == "204":
            answer.pop("content", None)  # no body, so no media type
        elif media is not None and status.startswith("2"):
            answer["content"] = media


def complete(schema: Schema) -> None:
    """Write the rules above into ``schema`` (the OpenAPI document as a dict), in place."""
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            _parameters(op, path)
            body = BODIES.get((method, path))
            if body is not None:
                op["requestBody"] = body
            _answers(op, method, path)
