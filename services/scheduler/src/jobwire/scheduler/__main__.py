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
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(scheduler.lost.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    finally:
        await scheduler.stop()
    if scheduler.lost.is_set():
        # exit non-zero so the supervisor restarts it, as a standby with a fresh view
        raise SystemExit(3)


def main() -> None:
    run_until_signalled(_main, "scheduler")


if __name__ == "__main__":
    main()
