"""Audit records of concurrent requests share publishes, and each request waits for its own to be stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.gateway.auth.audit import GroupCommit

pytestmark = pytest.mark.integration


def record(i: int) -> v1.AuditRecord:
    return v1.AuditRecord(
        at=datetime.now(UTC),
        actor="alice",
        action="jobs.submit",
        method="POST",
        path="/v1/jobs",
        status=201,
        target=f"j{i}",
    )


async def stored(bus) -> list[v1.AuditRecord]:  # type: ignore[no-untyped-def]
    info = await bus.js.stream_info(sj.CMD_STREAM)
    out: list[v1.AuditRecord] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(sj.CMD_STREAM, seq)
        out.extend(v1.decode(msg.data, v1.RecordAudit).records)
    return out


async def test_fifty_concurrent_records_share_a_few_messages_and_each_is_stored_when_awaited(clean_bus):
    sends = 0

    async def send(records: list[v1.AuditRecord]) -> object:
        nonlocal sends
        sends += 1
        return await clean_bus.publish(sj.cmd_subject("audit"), v1.RecordAudit(records=records))

    writer = GroupCommit(send)

    async def write(i: int) -> set[str | None]:
        await writer.write(record(i))
        return {r.target for r in await stored(clean_bus)}  # this request's record is already stored

    seen = await asyncio.gather(*(write(i) for i in range(50)))
    assert all(f"j{i}" in targets for i, targets in enumerate(seen))
    assert sends <= 3, sends  # the first record alone, the rest in one or two messages
    assert sorted(r.target or "" for r in await stored(clean_bus)) == sorted(f"j{i}" for i in range(50))


async def test_a_failed_publish_reaches_every_waiter():
    async def send(records: list[v1.AuditRecord]) -> object:
        raise ConnectionError("NATS is gone")

    writer = GroupCommit(send)
    results = await asyncio.gather(*(writer.write(record(i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
