"""``multipart/form-data`` submits: a code file plus a YAML or JSON spec, as researchers send them.

``curl -F code=@train.py -F spec=@job.yaml .../v1/jobs``; other fields named like top-level JobSpec
fields (``-F expected_runtime=600``) are read as YAML scalars. The uploaded file becomes
``spec.code`` (its filename kept), and the result is validated exactly like a JSON body.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import AsyncIterator
from email.message import Message
from typing import Any

import msgspec
import yaml  # type: ignore[import-untyped]

from jobwire.contracts import v1

from ..inputs import service as inputs
from ..inputs.service import InputTooLarge
from ..problems import InvalidBody, invalid_body
from ..resources import Resources
from . import gpuqueue
from .form import FIELDS, SPEC_FIELD, Kind
from .submit import parse_spec


def parse_any(
    body: bytes,
    content_type: str | None,
    warnings: list[str] | None = None,
    files: list[tuple[str, bytes]] | None = None,
) -> v1.JobSpec:
    """A JobSpec from a JSON body or a multipart form; what was ignored is added to ``warnings``, and
    the inputs the spec names that the caller must store before submitting to ``files`` (name, bytes)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return parse_form(body, content_type or "", warnings, files)
    return parse_spec(body, content_type)


def _parts(body: bytes, content_type: str) -> list[Message]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise InvalidBody("the multipart body could not be read (is the boundary right?)")
    return list(msg.iter_parts())


def _load_spec(text: str, filename: str | None, field: str = SPEC_FIELD) -> dict[str, Any]:
    try:
        if filename and filename.lower().endswith(".json"):
            raw = msgspec.json.decode(text)
        else:
            raw = yaml.safe_load(text)
    except (msgspec.DecodeError, yaml.YAMLError) as e:
        raise InvalidBody(
            f"field `{field}` is neither valid YAML nor JSON: {e}", extra={"path": "$"}
        ) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidBody(f"field `{field}` must be a mapping", extra={"path": "$"})
    return raw


def _text(part: Message, what: str) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = b""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBody(f"{what} must be UTF-8 text", extra={"path": "$.code.content"}) from None


def _scalar(part: Message, name: str) -> Any:
    try:
        return yaml.safe_load(_text(part, f"field `{name}`"))
    except yaml.YAMLError as e:
        raise InvalidBody(
            f"field `{name}` is not a valid YAML value: {e}", extra={"path": f"$.{name}"}
        ) from None


def parse_form(
    body: bytes,
    content_type: str,
    warnings: list[str] | None = None,
    files: list[tuple[str, bytes]] | None = None,
) -> v1.JobSpec:
    spec: dict[str, Any] = {}
    config_file: tuple[str | None, bytes, dict[str, Any]] | None = None  # the GPU queue's, to place
    code: tuple[str, str] | None = None
    extras: dict[str, Any] = {}
    queue: dict[str, Any] | None = None  # the GPU queue's config (gpuqueue), when the form is theirs
    for part in _parts(body, content_type):
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        field = FIELDS.get(name) if isinstance(name, str) else None
        if field is None:
            raise InvalidBody(
                f"unknown form field `{name}`: send `code` (the file), `spec` (YAML or JSON) "
                "and optionally top-level JobSpec fields",
                extra={"path": f"$.{name}"},
            )
        if field.file and not filename:
            raise InvalidBody(
                f"field `{field.name}` must be a file upload (curl -F {field.name}=@train.py)",
                extra={"path": f"$.{field.name}"},
            )
        if field.kind is Kind.SPEC:
            spec = _load_spec(_text(part, f"field `{SPEC_FIELD}`"), filename)
        elif field.kind is Kind.CODE:
            code = (filename or "", _text(part, "the code file"))
        elif field.kind is Kind.QUEUE_CONFIG:
            text = _text(part, f"field `{field.name}`")
            loaded = _load_spec(text, filename, field.name)
            queue = {**(queue or {}), **loaded}
            config_file = (filename, text.encode(), loaded)
        elif field.kind is Kind.QUEUE_TIME:
            queue = {**(queue or {}), field.name: _scalar(part, field.name)}
        else:
            extras[field.name] = _scalar(part, field.name)
    for key, value in extras.items():
        if key in spec:
            raise InvalidBody(
                f"`{key}` is given both in the spec and as a form field", extra={"path": f"$.{key}"}
            )
        spec[key] = value
    if queue is not None:
        found = gpuqueue.translate(queue, spec)
        if warnings is not None:
            warnings.extend(found)
    if config_file is not None:
        input_name, path, content = gpuqueue.config_input(*config_file)
        given = spec.get("inputs")
        spec["inputs"] = [*(given if isinstance(given, list) else []), {"name": input_name, "path": path}]
        if files is not None:
            files.append((input_name, content))
    if code is not None:
        given = spec.get("code")
        extra = given if isinstance(given, dict) else {}
        spec["code"] = {**extra, "filename": code[0], "content": code[1]}
    try:
        return v1.decode_strict(msgspec.json.encode(spec), v1.JobSpec)
    except (msgspec.MsgspecError, TypeError) as e:
        if isinstance(e, msgspec.MsgspecError):
            raise invalid_body(e) from None
        raise InvalidBody(f"the spec holds a value JSON cannot carry: {e}") from None


async def store_files(res: Resources, owner: str, files: list[tuple[str, bytes]]) -> None:
    """Store the files a form's spec names as ``owner``'s inputs, before the job is submitted (its node
    fetches them when it starts). Names are content digests: one already stored is left as it is."""
    if not files:
        return
    store = await res.bus.inputs()
    for name, content in files:
        if len(content) > res.settings.max_input_size:
            raise InputTooLarge(f"an input may be at most {res.settings.max_input_size} bytes")
        if await inputs.find(store, owner, name) is None:
            await inputs.put_input(res, owner, name, _once(content), limit=res.settings.max_input_size)


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
