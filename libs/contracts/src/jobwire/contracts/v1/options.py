"""Backend options as each backend's own schema: a job's ``backend_options`` are checked by the
gateway against the JSON Schema its candidate nodes publish with their capacity, so the gateway
refuses a bad option (422, naming the field) without knowing any backend's fields. The executor then
decodes them with its own msgspec type (and its own checks that a schema cannot express).

Only what ``msgspec.json.schema`` emits is understood: ``$ref``/``$defs``, ``anyOf``, ``type``,
``properties``, ``items``, ``additionalProperties``, ``enum``, and the rules beyond types that
``msgspec.Meta`` puts there (``pattern``, ``minLength``/``maxLength``, ``minimum``/``maximum`` and
their exclusive forms, ``minItems``/``maxItems``): a value no node could take (a partition with a
space or a line break, ``ppn: 0``) is refused at submit, naming the field. A property the schema does
not name is refused, as the gateway refuses unknown fields everywhere else.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from .codec import UnknownField, convert_strict
from .spec import LEGACY_OPTIONS, JobSpec

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


def schema_of(tp: type[msgspec.Struct]) -> dict[str, Any]:
    """The schema an executor publishes for its options type."""
    return msgspec.json.schema(tp)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        node = root.get("$defs", {}).get(name, {})
    return node


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(kind, (object,)))


def problem(value: Any, schema: Mapping[str, Any], path: str = "$.backend_options") -> str | None:
    """Why ``value`` does not fit ``schema`` (naming the field's path), or None when it fits."""
    return _check(value, schema, schema, path)


#: JSON Schema's range keywords, the comparison each asks for, and how an error says it
_RANGES: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
    ("minimum", operator.ge, ">="),
    ("exclusiveMinimum", operator.gt, ">"),
    ("maximum", operator.le, "<="),
    ("exclusiveMaximum", operator.lt, "<"),
)


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _beyond_type(value: Any, node: Mapping[str, Any], path: str) -> str | None:
    """The ``Meta`` rules (patterns, lengths, ranges) the value breaks, as msgspec would check them."""
    if isinstance(value, str):
        if "pattern" in node and not _pattern(str(node["pattern"])).search(value):
            return f"{path}: expected a string matching {node['pattern']!r}"
        if len(value) < node.get("minLength", 0):
            return f"{path}: expected a string of at least {node['minLength']} characters"
        if "maxLength" in node and len(value) > node["maxLength"]:
            return f"{path}: expected a string of at most {node['maxLength']} characters"
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, holds, word in _RANGES:
            if key in node and not holds(value, node[key]):
                return f"{path}: expected a number {word} {node[key]}"
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            return f"{path}: expected at least {node['minItems']} items"
        if "maxItems" in node and len(value) > node["maxItems"]:
            return f"{path}: expected at most {node['maxItems']} items"
    return None


def _check(value: Any, node: Mapping[str, Any], root: Mapping[str, Any], path: str) -> str | None:
    node = _resolve(node, root)
    if "anyOf" in node:
        errors = [_check(value, option, root, path) for option in node["anyOf"]]
        if all(errors):
            return next((e for e in errors if e and not e.endswith("has the wrong type")), errors[0])
        return None
    kind = node.get("type")
    if isinstance(kind, str) and not _is(value, kind):
        return f"{path}: expected {kind}, got {type(value).__name__}; {path} has the wrong type"
    if "enum" in node and value not in node["enum"]:
        return f"{path}: must be one of {', '.join(map(str, node['enum']))}"
    if err := _beyond_type(value, node, path):
        return err
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            if err := _check(item, node["items"], root, f"{path}[{i}]"):
                return err
    if isinstance(value, dict) and "properties" in node:
        props: Mapping[str, Any] = node["properties"]
        for key, item in value.items():
            if key not in props:
                known = ", ".join(sorted(props)) or "none"
                return f"{path}.{key}: unknown option (this backend takes: {known})"
            if err := _check(item, props[key], root, f"{path}.{key}"):
                return err
        missing = [k for k in node.get("required", []) if k not in value]
        if missing:
            return f"{path}.{missing[0]}: required"
    return None


def asks_problem(spec: JobSpec, schema: Mapping[str, Any]) -> str | None:
    """Why ``spec.backend_options``, read as the options type ``schema`` names, ask for more than
    ``resources`` (``gres: gpu:8`` with ``resources.gpus`` 0, directives in ``setup``), with the path
    under ``$.backend_options``; None when they do not or the type has no ``JobSpec`` field. The
    executor applies the same rules when it moves the options into that field."""
    name = str(schema.get("$ref", "")).rsplit("/", 1)[-1]
    if name not in LEGACY_OPTIONS or not spec.backend_options:
        return None
    field, tp = LEGACY_OPTIONS[name]
    try:
        options = convert_strict(spec.backend_options, tp)
        msgspec.structs.replace(spec, **{field: options, "backend_options": {}})
    except (msgspec.ValidationError, UnknownField, ValueError) as e:
        text = str(e)
        if text.startswith(field + "."):  # the asks rules name the field first: "slurm.gres ..."
            key = text[len(field) + 1 :].split(" ", 1)[0]
            return f"$.backend_options.{key}: {text}"
        return f"$.backend_options: {text}"
    return None
