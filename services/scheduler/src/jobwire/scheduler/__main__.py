"""``jobwire-scheduler``: run the scheduler until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from jobwire.runtime.lifecycle import run_until_signalled
from jobwire.runtime.settings import bus_settings

from .service import Scheduler
from .settings import scheduler_settings


async def _main(stop: asyncio.Event) -> None:
    scheduler = Scheduler(scheduler_settings(), bus_settings())
    await scheduler.start()
    try:
        # a lost lease (a NATS outage, another replica) is not an exit: the scheduler stands by and
        # takes it again by itself, with its view rebuilt from the database
        await stop.wait()
    finally:
        await scheduler.stop()


def main() -> None:
    run_until_signalled(_main, "scheduler")


if __name__ == "__main__":
    main()
