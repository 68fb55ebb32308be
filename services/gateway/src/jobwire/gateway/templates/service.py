"""Template names, validation, and merging a template with a submission's overrides.

Merging: the override's top-level fields replace the template's, except mappings (``env``, ``labels``,
``resources`` and the per-backend options), which are merged key by key. Naming what to run (``command``,
``script``, ``program`` or ``code``) in the override replaces the template's choice.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from jobwire.contracts import v1
from jobwire.store import templates

from ..problems import InvalidBody, InvalidParameter, MalformedJson, NotFound, invalid_body
from ..resources import Resources

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$(?!\n)")
RUNS = ("command", "script", "program", "code")
MERGED = ("env", "labels", "resources", "docker", "slurm", "sge", "torque", "ssh")
_PLACEHOLDER = {"command": ["true"]}


class TemplateNotFound(NotFound):
    slug, title = "template-not-found", "Template not found"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidParameter(
            "a template name is 1 to 128 of A-Z a-z 0-9 . _ - and starts with a letter or digit"
        )
    return name


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    if any(k in override for k in RUNS):
        for k in RUNS:
            merged.pop(k, None)
    for key, value in override.items():
        if key in MERGED and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def validate_partial(body: bytes) -> dict[str, Any]:
    """A JSON object whose fields are JobSpec fields with valid values (what to run may be left out)."""
    try:
        partial = json.loads(body or b"null")
    except ValueError as e:
        raise MalformedJson(f"the body is not valid JSON: {e}") from None
    if not isinstance(partial, dict):
        raise InvalidBody("send a JSON object: the JobSpec fields this template fixes")
    trial = partial if any(k in partial for k in RUNS) else {**partial, **_PLACEHOLDER}
    try:
        v1.decode_strict(json.dumps(trial).encode(), v1.JobSpec)
    except msgspec.MsgspecError as e:
        raise invalid_body(e) from None
    return partial


async def expand(res: Resources, body: bytes) -> bytes:
    """The submission body with its ``template`` applied; other bodies are returned unchanged."""
    if b'"template"' not in body:
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body  # parse_spec answers with the right 400
    if not isinstance(data, dict) or "template" not in data:
        return body
    name = data.pop("template")
    if not isinstance(name, str):
        raise InvalidBody("`template` must be a template's name", extra={"path": "$.template"})
    async with res.session() as session:
        found = await templates.get_template(session, check_name(name))
    if found is None:
        raise TemplateNotFound(f"there is no template {name!r}")
    return json.dumps(merge(found.spec, data)).encode()
