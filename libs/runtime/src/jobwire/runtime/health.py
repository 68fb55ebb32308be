"""``python -m jobwire.runtime.health SUBJECT``: exit 0 when a service answers its micro ``status``.

A container health check for services without HTTP (scheduler, executors): it proves the process is
connected to NATS with its own credentials and serving, not merely alive.
"""

from __future__ import annotations

import asyncio
import sys

from .bus import connect
from .settings import BusSettings, bus_settings


async def probe(settings: BusSettings, subject: str, timeout: float = 3.0) -> bool:
    bus = await connect(settings, name="jobwire-health")
    try:
        await bus.nc.request(subject, b"", timeout=timeout)
        return True
    except Exception:
        return False
    finally:
        await bus.close()


def main() -> int:
    subject = sys.argv[1] if len(sys.argv) > 1 else "jobwire.svc.jobwire-scheduler.status"
    try:
        return 0 if asyncio.run(probe(bus_settings(), subject)) else 1
    except Exception as e:
        print(f"unhealthy: {type(e).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
