import pytest

from jobwire.runtime.settings import BusSettings
from jobwire.scheduler.service import Scheduler
from jobwire.scheduler.settings import SchedulerSettings
from tests.support.fake_node import Events


@pytest.fixture
async def events(clean_bus):
    ev = Events()
    await ev.start(clean_bus)
    yield ev
    await ev.sub.unsubscribe()


@pytest.fixture
async def scheduler(clean_bus, nats_url, database_url):
    settings = SchedulerSettings(database_url=database_url, node_timeout=1.5, tick=0.1, timeout_grace=0.5)
    sched = Scheduler(settings, BusSettings(nats_url=nats_url))
    await sched.start()
    yield sched
    await sched.stop()
