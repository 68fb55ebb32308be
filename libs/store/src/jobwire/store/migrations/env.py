"""Alembic environment: runs on a connection handed over by ``jobwire.store.migrate``, or on its own.

``migrate()`` passes its (already locked) connection in ``config.attributes["connection"]``; the plain
``alembic`` command line instead gives ``sqlalchemy.url`` and this file opens an async engine for it.

A new revision, after changing the models::

    cfg = jobwire.store.engine.alembic_config()
    cfg.set_main_option("sqlalchemy.url", "sqlite:////tmp/jobwire-autogen.db")  # an empty or up-to-date DB
    alembic.command.upgrade(cfg, "head")
    alembic.command.revision(cfg, message="...", autogenerate=True, rev_id="0002")

then read and tidy the generated file, and keep it free of imports from ``models``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from jobwire.store.engine import make_engine
from jobwire.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


config = context.config
given: Connection | None = config.attributes.get("connection")
if given is not None:
    _run(given)
elif context.is_offline_mode():
    _run_offline(config.get_main_option("sqlalchemy.url") or "")
else:
    asyncio.run(_run_with_own_engine(config.get_main_option("sqlalchemy.url") or ""))
