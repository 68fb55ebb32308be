"""A NATS outage longer than the lease period: the scheduler stands by and takes the lease again by
itself, with its view rebuilt from the database, instead of exiting (issue 12, item 5)."""

import asyncio
import time
import uuid

import pytest

from jobwire.contracts import v1
from jobwire.runtime.bus import connect
from jobwire.runtime.settings import BusSettings
from jobwire.scheduler.service import Scheduler
from jobwire.scheduler.settings import SchedulerSettings
from tests.support.fake_node import Events, FakeNode, submit
from tests.support.private_nats import PrivateNats

pytestmark = pytest.mark.integration
TTL = 2.0
OUTAGE = 6.5


async def test_the_scheduler_survives_a_nats_outage_and_takes_the_lease_again(tmp_path, database_url):
    nats = PrivateNats(tmp_path / "nats")
    nats.start()
    settings = SchedulerSettings(
        database_url=database_url,
        node_timeout=5,
        tick=0.1,
        timeout_grace=0.5,
        instance="outage",
        lease_ttl=TTL,
        lease_bucket=f"jobwire_leader_{uuid.uuid4().hex[:8]}",
    )
    sched = Scheduler(settings, BusSettings(nats_url=nats.url))
    bus = await connect(BusSettings(nats_url=nats.url), name="outage-test", declare=True)
    node = None
    try:
        await sched.start()
        assert sched.role == "active"
        before = await submit(bus, v1.JobSpec(command=["true"], node="outage-n1"))
        await asyncio.sleep(0.5)  # stored while no node is there: it waits pending

        nats.stop()
        await asyncio.sleep(OUTAGE)
        assert sched.role != "active"  # could not refresh the lease: stopped processing
        nats.start()

        deadline = time.monotonic() + 20
        while not (sched.role == "active" and sched.losses >= 1):
            assert time.monotonic() < deadline, f"scheduler never took the lease again ({sched.role})"
            await asyncio.sleep(0.1)
        assert not sched.stopping

        events = Events()
        await events.start(bus)
        node = await FakeNode(bus, "outage-n1", slots=4).start()
        after = await submit(bus, v1.JobSpec(command=["true"], node="outage-n1"))
        await node.wait_runs(2, timeout=20)
        for jid in (before, after):
            await node.report(jid, "finished", outcome=v1.JobState.SUCCEEDED, exit_code=0)
        for jid in (before, after):
            await events.wait_state(jid, "succeeded", timeout=15)
    finally:
        if node is not None:
            await node.stop()
        await sched.stop()
        await bus.close()
        nats.stop()
