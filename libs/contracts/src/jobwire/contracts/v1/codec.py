"""JSON encoding for the bus and the API, and strict decoding for what users send."""

from __future__ import annotations

import threading
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


#: set (per thread) while ``decode_stored`` runs: the checks of ``JobSpec.__post_init__`` are skipped
_STORED = threading.local()


def decode_stored(data: bytes | str, tp: type[T]) -> T:
    """Decode what this system wrote after validating it (a stored job spec): ``decode`` without the
    cross-field checks of ``JobSpec.__post_init__``, which ran when the spec was accepted and made up
    ~85% of decoding a job (14-20 of 16-24 us per job of a listed page, issue 11). The types and field
    constraints are still applied by msgspec; never use it for bytes a caller sent.

    The flag is per thread and set around one synchronous decode, so a decode on another thread (or a
    coroutine switching in between, impossible here: nothing awaits) still runs every check."""
    _STORED.on = True
    try:
        result: T = _decoder(tp).decode(data)  # type: ignore[arg-type]
    finally:
        _STORED.on = False
    return result


def from_checked(tp: type[T], fields: dict[str, Any]) -> T:
    """``tp(**fields)`` from the fields of a spec that was checked when it was accepted (a submitted job
    built from its spec): ``JobSpec.__post_init__`` skips its checks as in ``decode_stored``. The gateway
    built every submit's answer this way, re-running them (~3% of its CPU per submit, issue 11)."""
    _STORED.on = True
    try:
        return tp(**fields)
    finally:
        _STORED.on = False


def decoding_stored() -> bool:
    """Whether this thread is inside ``decode_stored`` (its validated specs skip their checks)."""
    return getattr(_STORED, "on", False)


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


#: per msgspec type description (kept alive here, so its id stays its own): whether a value of it can
#: hold a struct, whose fields would need checking; and per struct, its fields' types (None where nothing
#: below can be unknown) and the names it accepts. Built once: rebuilt per request they were most of a
#: submit's check (64 of 104 us for a spec with resources, labels and env), now a dict lookup
_HOLDS: dict[int, tuple[mi.Type, bool]] = {}
_FIELDS: dict[int, tuple[mi.StructType, dict[str, mi.Type | None], frozenset[str]]] = {}


def _holds_struct(info: mi.Type) -> bool:
    got = _HOLDS.get(id(info))
    if got is None:
        got = _HOLDS[id(info)] = (info, _may_hold_struct(info))
    return got[1]


def _may_hold_struct(info: mi.Type) -> bool:
    if isinstance(info, mi.Metadata):
        return _may_hold_struct(info.type)
    if isinstance(info, mi.StructType):
        return True  # not descended: a struct may hold itself
    if isinstance(info, mi.UnionType):
        return any(_may_hold_struct(t) for t in info.types)
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _may_hold_struct(info.item_type)
    if isinstance(info, mi.DictType):
        return _may_hold_struct(info.value_type)
    return False


def _struct_fields(info: mi.StructType) -> tuple[dict[str, mi.Type | None], frozenset[str]]:
    got = _FIELDS.get(id(info))
    if got is None:
        fields = {f.encode_name: f.type if _holds_struct(f.type) else None for f in info.fields}
        allowed = frozenset(fields) | ({info.tag_field} if info.tag_field else frozenset())
        got = _FIELDS[id(info)] = (info, fields, allowed)
    return got[1], got[2]


def _check(raw: Any, info: mi.Type, path: str) -> None:
    if isinstance(info, mi.Metadata):
        _check(raw, info.type, path)
    elif isinstance(info, mi.StructType) and isinstance(raw, dict):
        fields, allowed = _struct_fields(info)
        for key, value in raw.items():
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise UnknownField(f"unknown field `{key}` at `{path}` (known fields: {known})")
            inner = fields.get(key)
            if inner is not None:
                _check(value, inner, f"{path}.{key}")
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
        if _holds_struct(info.item_type):
            for i, item in enumerate(raw):
                _check(item, info.item_type, f"{path}[{i}]")
    elif isinstance(info, mi.DictType) and isinstance(raw, dict) and _holds_struct(info.value_type):
        for key, value in raw.items():
            _check(value, info.value_type, f"{path}.{key}")
