"""JSON encoding for the bus and the API, and strict decoding for what users send."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


@cache
def _decoder(tp: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(tp)


def decode(data: bytes | str, tp: type[T]) -> T:
    """Lenient decode for bus messages: unknown fields are ignored (old readers, new writers)."""
    result: T = _decoder(tp).decode(data)  # type: ignore[arg-type]
    return result


class UnknownField(msgspec.ValidationError):
    """A field the contract does not define, reported with its JSON path."""


def decode_strict(data: bytes | str, tp: type[T]) -> T:
    """Decode what a user sent, refusing fields the contract does not know (typos lose nothing silently)."""
    raw = msgspec.json.decode(data)
    check_known_fields(raw, tp)
    return msgspec.convert(raw, tp)


def convert_strict(raw: Any, tp: type[T]) -> T:
    check_known_fields(raw, tp)
    return msgspec.convert(raw, tp)


@cache
def _type_info(tp: Any) -> mi.Type:
    """msgspec's description of ``tp``, built once: building it costs more than the whole check."""
    return mi.type_info(tp)


def check_known_fields(raw: Any, tp: Any) -> None:
    _check(raw, _type_info(tp), "$")


def _check(raw: Any, info: mi.Type, path: str) -> None:
    if isinstance(info, mi.Metadata):
        _check(raw, info.type, path)
    elif isinstance(info, mi.StructType) and isinstance(raw, dict):
        fields = {f.encode_name: f for f in info.fields}
        allowed = set(fields)
        if info.tag_field:
            allowed.add(info.tag_field)
        for key, value in raw.items():
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise UnknownField(f"unknown field `{key}` at `{path}` (known fields: {known})")
            if key in fields:
                _check(value, fields[key].type, f"{path}.{key}")
    elif isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if isinstance(raw, dict) and len(structs) == 1:
            _check(raw, structs[0], path)
        elif isinstance(raw, dict) and structs and structs[0].tag_field:
            tag = raw.get(structs[0].tag_field)
            for st in structs:
                if st.tag == tag:
                    _check(raw, st, path)
        elif isinstance(raw, list):
            for t in info.types:
                if isinstance(t, mi.ListType):
                    _check(raw, t, path)
    elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType) and isinstance(
        raw, list
    ):
        for i, item in enumerate(raw):
            _check(item, info.item_type, f"{path}[{i}]")
    elif isinstance(info, mi.DictType) and isinstance(raw, dict):
        for key, value in raw.items():
            _check(value, info.value_type, f"{path}.{key}")
