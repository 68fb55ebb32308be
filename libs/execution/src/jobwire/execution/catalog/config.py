"""Configured programs: a TOML or JSON file the operator writes, read once at start.

TOML: ``[[programs]]`` tables; JSON: a list, or ``{"programs": [...]}``. Each entry has ``name``,
``version``, either ``command`` (an argv list) or ``entry`` (an absolute path, run with the job's
``args``), and an optional ``description``. A bad entry stops the start with a message naming it.
"""

from __future__ import annotations

import json
import posixpath
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from .model import Program


class ProgramConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    version: str
    command: list[str] | None = None
    entry: str | None = None
    description: str | None = None


class CatalogConfigError(ValueError):
    """The programs file cannot be used as it is."""


def load_programs(path: str | Path) -> list[Program]:
    """The programs of ``path`` (``.toml``, else JSON)."""
    p = Path(path)
    try:
        text = p.read_text()
        raw: Any = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as e:
        raise CatalogConfigError(f"cannot read the programs file {p}: {e}") from e
    items = raw.get("programs", []) if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise CatalogConfigError(f"{p}: expected a list of programs")
    return [_program(p, n, item) for n, item in enumerate(items, 1)]


def _program(path: Path, n: int, item: Any) -> Program:
    where = f"{path}, program {n}"
    try:
        c = msgspec.convert(item, ProgramConfig)
    except msgspec.ValidationError as e:
        raise CatalogConfigError(f"{where}: {e}") from e
    where = f"{path}, program {c.name}@{c.version}"
    if (c.command is None) == (c.entry is None):
        raise CatalogConfigError(f"{where}: give exactly one of 'command' (an argv list) or 'entry' (a path)")
    if c.entry is not None and not posixpath.isabs(c.entry):
        raise CatalogConfigError(f"{where}: entry {c.entry!r} must be an absolute path on the cluster")
    argv = tuple(c.command) if c.command is not None else (str(c.entry),)
    try:
        return Program(c.name, c.version, argv, c.description)
    except ValueError as e:
        raise CatalogConfigError(f"{path}: {e}") from e
