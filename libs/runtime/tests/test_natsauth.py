"""The generated NATS users against a real nats-server: each role can do what its code does, and no more."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, ObjectStoreConfig

from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime import natsauth
from jobwire.runtime.bus import Bus, connect
from jobwire.runtime.settings import BusSettings
from tests.fixtures.nats import NatsServer, start_nats, stop_nats

pytestmark = [pytest.mark.integration, pytest.mark.backend("nats")]

NODE, OTHER = "node-a", "node-b"


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[NatsServer, dict[str, str]]]:
    base = Path(tempfile.mkdtemp(prefix="jobwire-natsauth-"))
    files = natsauth.generate(base / "secrets", [NODE, OTHER])
    assert (base / "secrets" / "nats-auth.conf").stat().st_mode & 0o077 == 0
    passwords = {user: Path(f).read_text() for user, f in files.items()}
    server = start_nats(base / "nats", config=(base / "secrets" / "nats-auth.conf").read_text())
    yield server, passwords
    stop_nats(server)
    shutil.rmtree(base, ignore_errors=True)


class Probe:
    """A raw connection as one user that records the server's permission violations."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Any = None

    async def open(self, url: str, user: str, password: str) -> Probe:
        async def on_error(e: Exception) -> None:
            self.errors.append(str(e))

        self.nc = await nats.connect(
            url,
            user=user,
            password=password,
            inbox_prefix=natsauth.inbox_prefix(user),
            error_cb=on_error,
            max_reconnect_attempts=0,
        )
        return self

    async def violations(self) -> list[str]:
        await self.nc.flush()
        await asyncio.sleep(0.1)
        return [e for e in self.errors if "permissions violation" in e.lower()]


@pytest.fixture
async def as_user(secured: tuple[NatsServer, dict[str, str]]) -> AsyncIterator[Any]:
    server, passwords = secured
    opened: list[Any] = []

    async def open_as(user: str) -> Probe:
        probe = await Probe().open(server.url, user, passwords[user])
        opened.append(probe.nc)
        return probe

    yield open_as
    for nc in opened:
        await nc.close()


async def bus_as(secured: tuple[NatsServer, dict[str, str]], user: str, *, declare: bool = False) -> Bus:
    server, passwords = secured
    settings = BusSettings(
        nats_url=server.url, nats_user=user, nats_password=passwords[user], declare_streams=declare
    )
    return await connect(settings, name=f"test-{user}", declare=True)


@pytest.fixture
async def scheduler(secured: tuple[NatsServer, dict[str, str]]) -> AsyncIterator[Bus]:
    """The scheduler declares everything, as it does at start (it alone may)."""
    bus = await bus_as(secured, natsauth.SCHEDULER, declare=True)
    with contextlib.suppress(Exception):
        await bus.js.create_object_store(natsauth.INPUT_BUCKET, ObjectStoreConfig())
    yield bus
    await bus.close()


async def test_a_wrong_password_is_refused(secured: tuple[NatsServer, dict[str, str]]) -> None:
    server, _ = secured
    with pytest.raises(NatsError):
        await nats.connect(
            server.url,
            user=natsauth.GATEWAY,
            password="wrong",
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )


async def test_the_gateway_submits_and_reads_but_cannot_dispatch_or_change_streams(
    secured: tuple[NatsServer, dict[str, str]], scheduler: Bus, as_user: Any
) -> None:
    gw = await bus_as(secured, natsauth.GATEWAY)
    try:
        ack = await gw.publish(sj.cmd_subject("submit"), b"{}", msg_id="natsauth-submit")
        assert ack.stream == sj.CMD_STREAM
        kv = await gw.idempotency()
        await kv.put("natsauth-key", b"job")
        assert (await kv.get("natsauth-key")).value == b"job"
        inputs = await gw.js.object_store(natsauth.INPUT_BUCKET)
        await inputs.put("alice/data.csv", b"a,b\n")
        await inputs.put("alice/data.csv", b"a,b,c\n")  # an overwrite purges the old chunks
        assert (await inputs.get("alice/data.csv")).data == b"a,b,c\n"
        await scheduler.publish(sj.event_subject("job-gw", "queued"), b'{"s":1}', msg_id="gw-evt")
        assert (await gw.js.get_last_msg(sj.EVT_STREAM, sj.event_subject("job-gw", "queued"))).data
        sub = await gw.js.subscribe(
            sj.job_events_filter("job-gw"), stream=sj.EVT_STREAM, ordered_consumer=True
        )
        assert (await sub.next_msg(timeout=2)).data == b'{"s":1}'
        await sub.unsubscribe()
        # logs and events are read through an ephemeral pull consumer, a batch at a time
        pull = await gw.js.pull_subscribe(
            sj.job_events_filter("job-gw"),
            stream=sj.EVT_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30),
        )
        assert [m.data for m in await pull.fetch(8, timeout=2)] == [b'{"s":1}']
        await pull.unsubscribe()
    finally:
        await gw.close()

    # The acceptance waiters' one core subscription: without it every submit under auth was a 202 after
    # the wait, never the 201 that says the scheduler stored the job.
    watcher = await as_user(natsauth.GATEWAY)
    seen = await watcher.nc.subscribe(sj.JOB_EVENT_SUBJECTS)
    await watcher.nc.flush()
    # Core delivery is at most once (see the observer test below): publish until one arrives.
    got = None
    for n in range(10):
        await scheduler.publish(sj.event_subject("job-gw2", "queued"), b'{"s":2}', msg_id=f"gw-evt-2-{n}")
        with contextlib.suppress(nats.errors.TimeoutError):
            got = await seen.next_msg(timeout=1)
            break
    assert got is not None and got.data == b'{"s":2}'
    assert await watcher.violations() == []

    probe = await as_user(natsauth.GATEWAY)
    await probe.nc.publish(sj.exec_subject(NODE, "run"), b"{}")
    await probe.nc.publish(f"$JS.API.STREAM.DELETE.{sj.CMD_STREAM}", b"")
    await probe.nc.publish(f"$JS.API.STREAM.PURGE.{sj.EVT_STREAM}", b"")
    await probe.nc.subscribe("_INBOX.scheduler.>")
    assert len(await probe.violations()) == 4
    assert (await scheduler.js.stream_info(sj.CMD_STREAM)).config.name == sj.CMD_STREAM


async def test_an_executor_works_its_own_node_and_cannot_publish_a_command(
    secured: tuple[NatsServer, dict[str, str]], scheduler: Bus, as_user: Any
) -> None:
    before = (await scheduler.js.stream_info(sj.CMD_STREAM)).state.messages
    ex = await bus_as(secured, natsauth.executor_user(NODE))
    try:
        await scheduler.publish(sj.exec_subject(NODE, "run"), b"work", msg_id="natsauth-run")
        # the same calls as jobwire.execution.service
        sub = await ex.js.pull_subscribe(
            sj.exec_filter(NODE),
            durable=f"exec-{NODE}",
            stream=sj.EXEC_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1),
        )
        (msg,) = await sub.fetch(1, timeout=2)
        assert msg.data == b"work"
        await msg.ack_sync()
        await ex.publish(sj.report_subject(NODE, "job-x", "finished"), b"{}", msg_id="natsauth-rep")
        await ex.publish(sj.event_subject("job-x", "progress"), b"{}", msg_id="natsauth-prog")
        await ex.publish(sj.log_subject("job-x", "stdout"), b"{}", msg_id="natsauth-log")
        assert (await ex.js.get_last_msg(sj.LOG_STREAM, sj.log_subject("job-x", "stdout"))).data
        await ex.publish_core(sj.heartbeat_subject(NODE), b"{}")
        store = await ex.artifacts()
        await store.put(sj.artifact_object("job-x", "out.txt"), b"result")
        inputs = await ex.js.object_store(natsauth.INPUT_BUCKET)
        await inputs.get("alice/data.csv")
    finally:
        await ex.close()

    probe = await as_user(natsauth.executor_user(NODE))
    await probe.nc.publish(sj.cmd_subject("submit"), b"{}")
    await probe.nc.publish(sj.event_subject("job-x", "succeeded"), b"{}")
    await probe.nc.publish(sj.report_subject(OTHER, "job-x", "finished"), b"{}")
    await probe.nc.publish(sj.heartbeat_subject(OTHER), b"{}")
    await probe.nc.subscribe(sj.exec_filter(OTHER))
    await probe.nc.subscribe("_INBOX.gateway.>")
    assert len(await probe.violations()) == 6
    assert (await scheduler.js.stream_info(sj.CMD_STREAM)).state.messages == before


async def test_an_executor_publishes_only_its_own_program_catalog_and_the_gateway_reads_them(
    secured: tuple[NatsServer, dict[str, str]], scheduler: Bus, as_user: Any
) -> None:
    # the same calls as jobwire.execution.catalog.publish and jobwire.gateway.programs
    ex = await bus_as(secured, natsauth.executor_user(NODE))
    try:
        await (await ex.js.key_value(sj.PROGRAM_BUCKET)).put(NODE, b'{"node":"node-a"}')
    finally:
        await ex.close()
    gw = await bus_as(secured, natsauth.GATEWAY)
    try:
        kv = await gw.js.key_value(sj.PROGRAM_BUCKET)
        assert NODE in await kv.keys()
        assert (await kv.get(NODE)).value == b'{"node":"node-a"}'
    finally:
        await gw.close()

    probe = await as_user(natsauth.executor_user(NODE))
    await probe.nc.publish(f"$KV.{sj.PROGRAM_BUCKET}.{OTHER}", b"{}")
    await probe.nc.publish(f"$JS.API.STREAM.PURGE.KV_{sj.PROGRAM_BUCKET}", b"")
    gw_probe = await as_user(natsauth.GATEWAY)
    await gw_probe.nc.publish(f"$KV.{sj.PROGRAM_BUCKET}.{NODE}", b"{}")
    assert len(await probe.violations()) == 2
    assert len(await gw_probe.violations()) == 1


async def test_an_executor_cannot_consume_another_nodes_work(
    secured: tuple[NatsServer, dict[str, str]], as_user: Any
) -> None:
    probe = await as_user(natsauth.executor_user(NODE))
    js = probe.nc.jetstream(timeout=0.5)
    for durable, node in ((f"exec-{OTHER}", OTHER), (f"exec-{NODE}", OTHER)):
        with pytest.raises(NatsError):  # refused: the request never reaches JetStream and times out
            await js.add_consumer(
                sj.EXEC_STREAM,
                ConsumerConfig(name=durable, durable_name=durable, filter_subject=sj.exec_filter(node)),
            )
    await probe.nc.publish(f"$JS.API.CONSUMER.DURABLE.CREATE.{sj.EXEC_STREAM}.exec-{NODE}", b"{}")
    await probe.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{sj.EXEC_STREAM}.exec-{OTHER}", b"{}")
    await probe.nc.publish(f"$JS.API.STREAM.MSG.GET.{sj.EXEC_STREAM}", b'{"seq":1}')
    assert len(await probe.violations()) == 5


async def test_the_observer_reads_events_and_publishes_nothing(scheduler: Bus, as_user: Any) -> None:
    probe = await as_user(natsauth.OBSERVER)
    sub = await probe.nc.subscribe(sj.EVT_SUBJECTS)
    await probe.nc.flush()
    # Core delivery is at most once: about one run in twenty here the first event published right
    # after the SUB was flushed never arrived (stored in the stream all the same), so publish a few.
    got = None
    for n in range(10):
        await scheduler.publish(sj.event_subject("job-o", "running"), b'{"o":1}', msg_id=f"natsauth-obs-{n}")
        with contextlib.suppress(nats.errors.TimeoutError):
            got = await sub.next_msg(timeout=0.5)
            break
    assert got is not None and got.data == b'{"o":1}'
    assert not await probe.violations()

    for subject in (
        sj.event_subject("job-o", "succeeded"),
        sj.cmd_subject("submit"),
        "$JS.API.INFO",
        "_INBOX.x",
    ):
        await probe.nc.publish(subject, b"{}")
    for subject in (sj.LOG_SUBJECTS, sj.CMD_SUBJECTS, "_INBOX.>"):
        await probe.nc.subscribe(subject)
    assert len(await probe.violations()) == 7


@pytest.mark.unit
def test_passwords_survive_a_second_run_and_stay_out_of_the_listing(tmp_path: Path) -> None:
    first = natsauth.generate(tmp_path, ["n1"])
    kept = {u: Path(f).read_text() for u, f in first.items()}
    natsauth.generate(tmp_path, ["n1", "n2"])
    assert {u: Path(f).read_text() for u, f in first.items()} == kept
    assert (tmp_path / "nats-executor-n2.password").exists()
    with pytest.raises(ValueError, match="node"):
        natsauth.executor("bad.node")
