"""Job templates: named partial JobSpecs (JSON objects) that submissions start from."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import TemplateRow, now


class Template(msgspec.Struct, kw_only=True):
    name: str
    owner: str
    spec: dict[str, Any]
    updated_at: datetime


def _template(row: TemplateRow) -> Template:
    return Template(name=row.name, owner=row.owner, spec=json.loads(row.spec), updated_at=row.updated_at)


async def get_template(session: AsyncSession, name: str) -> Template | None:
    row = await session.get(TemplateRow, name)
    return None if row is None else _template(row)


async def list_templates(session: AsyncSession, *, prefix: str = "") -> list[Template]:
    query = select(TemplateRow).order_by(TemplateRow.name)
    if prefix:
        query = query.where(TemplateRow.name.startswith(prefix, autoescape=True))
    return [_template(r) for r in (await session.execute(query)).scalars()]


async def put_template(session: AsyncSession, name: str, owner: str, spec: dict[str, Any]) -> Template:
    """Create or replace (the caller checks who may replace whose, and commits)."""
    row = await session.get(TemplateRow, name)
    if row is None:
        row = TemplateRow(name=name, owner=owner)
        session.add(row)
    row.spec = json.dumps(spec, separators=(",", ":")).encode()
    row.updated_at = now()
    await session.flush()
    return _template(row)


async def delete_template(session: AsyncSession, name: str) -> bool:
    row = await session.get(TemplateRow, name)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True
