"""The fields of the ``multipart/form-data`` submit, in one table read by both the parser
(``multipart.parse_form``) and the OpenAPI schema (``openapi.form_schema``), so neither can name a field
the other does not know.

No field is required on its own: the spec (or the top-level fields, or the GPU queue's config) must
still make a valid JobSpec, and a form that does not is a 422 naming the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from jobwire.contracts import v1


class Kind(Enum):
    """How a part is read."""

    CODE = "code"  # a file upload whose name and UTF-8 text become ``spec.code``
    SPEC = "spec"  # a YAML or JSON JobSpec mapping (JSON when its file name ends in .json)
    QUEUE_CONFIG = "queue_config"  # the GPU queue's config file (YAML or JSON mapping)
    QUEUE_TIME = "queue_time"  # the GPU queue's ``expected_time`` (a YAML scalar)
    SCALAR = "scalar"  # a top-level JobSpec field, its text read as YAML


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    #: must be sent as a file (``filename`` in its Content-Disposition)
    file: bool
    #: the media types the part may declare (the OpenAPI ``encoding``)
    content_types: str
    description: str


CODE_FIELD = "code"
SPEC_FIELD = "spec"
CONFIG_FIELD = "config_file"
TIME_FIELD = "expected_time"

_NAMED = (
    Field(
        CODE_FIELD,
        Kind.CODE,
        True,
        "text/plain, text/x-python, application/octet-stream",
        "The code file to run (UTF-8); its file name is kept as `code.filename`",
    ),
    Field(
        SPEC_FIELD,
        Kind.SPEC,
        False,
        "application/yaml, application/json, text/plain",
        "A JobSpec mapping in YAML, or JSON when sent as a file named *.json",
    ),
    Field(
        CONFIG_FIELD,
        Kind.QUEUE_CONFIG,
        False,
        "application/yaml, application/x-yaml, application/json, text/plain",
        "The GPU queue's config (YAML or JSON mapping): `expected_time` becomes `expected_runtime`, "
        "`competition_id`, `project_id` and `user_id` become labels, the job gets one GPU unless it "
        "says otherwise; the file is placed in the job's directory under its own name",
    ),
    Field(
        TIME_FIELD,
        Kind.QUEUE_TIME,
        False,
        "text/plain",
        "The GPU queue's expected time in seconds (becomes `expected_runtime`)",
    ),
)


def _scalars() -> tuple[Field, ...]:
    taken = {f.name for f in _NAMED}
    return tuple(
        Field(name, Kind.SCALAR, False, "text/plain", f"The JobSpec's `{name}`, read as YAML")
        for name in v1.JobSpec.__struct_fields__
        if name not in taken
    )


FIELDS: dict[str, Field] = {f.name: f for f in (*_NAMED, *_scalars())}
