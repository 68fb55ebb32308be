"""Program catalogs: what each executor node offers as ``program: "NAME@VERSION"``.

An executor publishes its :class:`ProgramCatalog` in the KV bucket ``jobwire_programs`` under its node
name; the gateway lists them as :class:`ProgramView` (``GET /v1/programs``) and refuses a job whose
program no node offers. Names and versions double as directory names on the cluster, so they are held
to one safe character set here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

#: a name or a version: a letter or digit first (so never ``.``, ``..`` or an option), then ``._+-``
PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$(?!\n)")
Part = Annotated[str, Meta(min_length=1, max_length=128, pattern=PART.pattern)]


def check_part(value: str, what: str) -> str:
    """``value`` if it is a safe program name or version, else ValueError saying why."""
    if not PART.match(value):
        raise ValueError(
            f"{what} {value!r} must start with a letter or digit and use only letters, digits and "
            "'._+-' (at most 128)"
        )
    return value


def program_id(name: str, version: str) -> str:
    return f"{check_part(name, 'program name')}@{check_part(version, 'program version')}"


def version_key(version: str) -> list[tuple[int, int | str]]:
    """Natural order for listings and refusals: ``v2 < v10``; digit runs compare as numbers."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", version) if p]


def split_id(pid: str) -> tuple[str, str]:
    """``("NAME", "VERSION")`` of ``NAME@VERSION``; ValueError for anything else."""
    name, sep, version = pid.partition("@")
    if not sep:
        raise ValueError(f"program {pid!r} must look like NAME@VERSION")
    return check_part(name, "program name"), check_part(version, "program version")


class ProgramEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One program of a node's catalog (how it is started stays on the node)."""

    name: Part
    version: Part
    description: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


class ProgramCatalog(msgspec.Struct, kw_only=True):
    """A node's whole catalog, as published in ``jobwire_programs`` under the node's name."""

    node: str
    cluster: str
    at: datetime
    programs: list[ProgramEntry] = []


class ProgramView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One program on one node, as ``GET /v1/programs`` lists it."""

    id: str
    name: str
    version: str
    cluster: str
    node: str
    description: str | None = None
    #: when the node last published its catalog
    published_at: datetime | None = None
