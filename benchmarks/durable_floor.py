"""The durable-submit floor: the least any gateway + scheduler pair of jobwire's shape can do per submit.

Issue 11 asks durable submits to reach 0.7x a bare route. A durable submit, by the design, is an HTTP
request whose 201 says the one writer of the job database stored the job: the route decodes the spec,
publishes it to JetStream (awaiting the stream's ack), and waits until the writer, a second process that
pulls the stream in batches, has committed the batch's rows to SQLite and replied. This module is that
pipeline and nothing else, written as lean as we know how: no auth, no audit, no quotas, no validation
beyond msgspec's decode, one INSERT statement and one COMMIT per batch, one ack per batch (AckAll), one
reply message per batch and route process. Its rate is what the same parts on the same machine allow; a
jobwire figure at or near it is the design's limit, not the code's.

    python -m benchmarks.durable_floor route PORT NATS_URL      # the HTTP side (uvloop + httptools)
    python -m benchmarks.durable_floor store NATS_URL DB        # the one writer: a SQLite path or a
                                                                # postgresql:// URL (asyncpg)

``ceilings.durable_floor_curve`` starts a NATS server, both processes, and loads the route like the gateway.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
import uuid

import asyncpg
import msgspec
import nats
from litestar import Litestar, Request, Response, post
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from benchmarks import bare_route
from jobwire.contracts import v1

STREAM = "FLOOR"
SUBJECT = "floor.submit"
REPLIES = "floor.stored"  # + "." + the route process's id
BATCH = 256
#: await JetStream's ack of each publish (0: publish and wait only for the writer's reply)
ACKED = os.environ.get("FLOOR_ACK", "1") != "0"


class Stored(msgspec.Struct):
    """One reply per batch and route process: the ids the writer committed."""

    ids: list[str]


class Route:
    """The HTTP side: publish with ack, then wait for the writer's word that the row is committed."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.inbox = f"{REPLIES}.{os.getpid()}"
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.nc: nats.NATS | None = None

    async def start(self) -> None:
        self.nc = await nats.connect(self.nats_url)
        self.js = self.nc.jetstream()
        await self.nc.subscribe(self.inbox, cb=self._stored)

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()

    async def _stored(self, msg: nats.aio.msg.Msg) -> None:
        for job_id in msgspec.json.decode(msg.data, type=Stored).ids:
            fut = self.waiting.pop(job_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def submit(self, body: bytes) -> bytes:
        spec = msgspec.json.decode(body, type=v1.JobSpec)
        job_id = str(uuid.uuid4())
        fut = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = fut
        headers = {"Nats-Msg-Id": job_id, "Floor-Id": job_id, "Floor-Reply": self.inbox}
        if ACKED:
            await self.js.publish(SUBJECT, body, headers=headers)
        else:  # the stream stores it all the same; the writer's reply is the word that it is stored
            await self.nc.publish(SUBJECT, body, headers=headers)  # type: ignore[union-attr]
        await asyncio.wait_for(fut, 30)
        return msgspec.json.encode({"id": job_id, "name": spec.name, "state": "queued"})


def route_app(nats_url: str) -> Litestar:
    route = Route(nats_url)

    @post("/v1/jobs", status_code=201)
    async def submit(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
        answer = await route.submit(await request.body())
        return Response(answer, status_code=201, media_type="application/json")

    return Litestar([submit], openapi_config=None, on_startup=[route.start], on_shutdown=[route.stop])


async def ensure_stream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        config = StreamConfig(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE)
        await nc.jetstream().add_stream(config)
    finally:
        await nc.close()


class SqliteRows:
    """SQLite in WAL mode with the store's pragmas: one executemany and one COMMIT per batch."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "busy_timeout=5000", "synchronous=NORMAL"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT, spec BLOB, at REAL)"
        )

    async def insert(self, rows: list[tuple[str, str, bytes, float]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?)", rows)
        self.db.execute("COMMIT")


class PostgresRows:
    """PostgreSQL through asyncpg, one connection: one executemany in one transaction per batch."""

    async def open(self, url: str) -> PostgresRows:
        self.db = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS floor_jobs (id text PRIMARY KEY, state text, spec bytea, at float8)"
        )
        return self

    async def insert(self, rows: list[tuple[str, str, bytes, float]]) -> None:
        async with self.db.transaction():
            await self.db.executemany(
                "INSERT INTO floor_jobs VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", rows
            )


async def store(nats_url: str, database: str) -> None:
    """The one writer: pull what is there (up to BATCH), insert it in one transaction, ack, reply."""
    db: SqliteRows | PostgresRows
    if database.startswith("postgresql"):
        db = await PostgresRows().open(database)
    else:
        db = SqliteRows(database)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(SUBJECT, "floor-store", config=ConsumerConfig(ack_policy=AckPolicy.ALL))
    while True:
        try:
            msgs = await sub.fetch(BATCH, timeout=5)
        except nats.errors.TimeoutError:
            continue
        now = time.time()
        rows = [(m.headers["Floor-Id"], "queued", m.data, now) for m in msgs if m.headers]  # type: ignore[index]
        await db.insert(rows)
        await msgs[-1].ack()  # AckAll: the last message acknowledges the batch
        replies: dict[str, list[str]] = {}
        for m in msgs:
            if m.headers:
                replies.setdefault(m.headers["Floor-Reply"], []).append(m.headers["Floor-Id"])
        for inbox, ids in replies.items():
            await nc.publish(inbox, msgspec.json.encode(Stored(ids)))


def main() -> None:
    role = sys.argv[1]
    if role == "route":
        port, nats_url = int(sys.argv[2]), sys.argv[3]
        asyncio.run(ensure_stream(nats_url))
        bare_route.serve(route_app(nats_url), port)
    elif role == "store":
        import uvloop

        asyncio.run(ensure_stream(sys.argv[2]))
        uvloop.run(store(sys.argv[2], sys.argv[3]))
    else:
        raise SystemExit(f"unknown role {role!r}: route or store")


if __name__ == "__main__":
    main()
