"""Access bookkeeping the gateway sends instead of writing it: audit records, token changes, token uses.

Applied in the batch's transaction like job commands (bulk statements, one per kind); token records that
changed are put in the token bucket after the commit and before the ack, so every gateway replica learns
of a new or revoked token from its watch, and a crash in between redelivers the command (idempotent).
"""

from __future__ import annotations

import logging
from datetime import datetime

from nats.js.api import KeyValueConfig
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from sqlalchemy.ext.asyncio import AsyncSession

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus
from jobwire.store import audit, tokens

log = logging.getLogger(__name__)


class Access:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.bucket: KeyValue | None = None

    async def apply(self, session: AsyncSession, commands: list[v1.AccessCommand]) -> list[v1.TokenRecord]:
        """Write what ``commands`` ask for; returns the token records to announce after the commit."""
        records: list[v1.AuditRecord] = []
        uses: dict[str, datetime] = {}
        changed: dict[str, v1.TokenRecord] = {}
        for cmd in commands:
            if isinstance(cmd, v1.RecordAudit):
                records.extend(cmd.records)
            elif isinstance(cmd, v1.TouchTokens):
                for tid, at in cmd.uses.items():
                    uses[tid] = max(at, uses.get(tid, at))
            elif isinstance(cmd, v1.CreateToken):
                changed[cmd.token.id] = await tokens.store_record(session, cmd.token)
            elif isinstance(cmd, v1.RevokeToken):
                revoked = await tokens.revoke_at(session, cmd.token_id, cmd.at)
                if revoked is not None:
                    changed[revoked.id] = revoked
        await audit.insert_records(session, records)
        await tokens.touch_many(session, uses)
        return list(changed.values())

    async def announce(self, records: list[v1.TokenRecord]) -> None:
        """Put committed token records in the bucket; a failure leaves them to the gateways' reload."""
        if not records:
            return
        try:
            if self.bucket is None:
                self.bucket = await self.token_bucket()
            for record in records:
                await self.bucket.put(record.id, v1.encode(record))
        except Exception as e:
            log.warning("could not announce %d token changes (%s); gateways reload them", len(records), e)

    async def token_bucket(self) -> KeyValue:
        try:
            return await self.bus.js.key_value(sj.TOKEN_BUCKET)
        except NotFoundError:
            config = KeyValueConfig(bucket=sj.TOKEN_BUCKET, replicas=self.bus.settings.stream_replicas)
            return await self.bus.js.create_key_value(config)
