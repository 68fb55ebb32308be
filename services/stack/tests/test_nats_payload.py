"""The stack's own nats-server takes the messages the gateway sends: a 10,000-spec batch is one message of
about 2 MB, which NATS's 1 MiB default refused (the gateway answered 413 on `make run`)."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from jobwire.stack.processes import NatsProcess, free_port

pytestmark = pytest.mark.integration


async def test_the_stacks_bus_takes_a_ten_thousand_job_batch(tmp_path: Path) -> None:
    server = NatsProcess(tmp_path, free_port(), free_port(), None)
    server.start()
    try:
        nc = await nats.connect(server.url)
        try:
            assert nc.max_payload == 8 * 1024 * 1024
            js = nc.jetstream()
            await js.add_stream(name="BIG", subjects=["big.>"])
            ack = await js.publish("big.batch", b"x" * (2 * 1024 * 1024))
            assert ack.seq == 1
        finally:
            await nc.close()
    finally:
        server.process.stop()
