"""Declaring the streams on a JetStream cluster that is still forming (real nats-servers, R3).

Compose starts the three nodes and the scheduler together; until the nodes have found each other and
elected a meta leader, the JetStream API answers "no responders" or 503. The declaration waits that
out, logged and bounded, instead of failing the service's start.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import connect, declare_streams
from jobwire.runtime.settings import BusSettings
from tests.fixtures.nats import NatsServer, start_nats, stop_nats

pytestmark = [pytest.mark.integration, pytest.mark.backend("nats")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """Three nodes that know each other's routes; each is started when the test says so."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.routes = [_free_port() for _ in range(3)]
        self.servers: list[NatsServer] = []

    def start(self, i: int) -> NatsServer:
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.routes)
        config = (
            f"server_name: n{i}\n"
            f"cluster {{ name: jobwire-test, listen: 127.0.0.1:{self.routes[i]}, routes: [{routes}] }}\n"
        )
        server = start_nats(self.base / f"n{i}", config=config)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            stop_nats(server)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="jobwire-jscluster-"))
    c = Cluster(base)
    yield c
    c.stop()
    shutil.rmtree(base, ignore_errors=True)


async def test_declaration_waits_for_the_cluster_to_form(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    first = cluster.start(0)
    bus = await connect(BusSettings(nats_url=first.url, stream_replicas=3), name="declare-test")
    try:
        declaring = asyncio.create_task(declare_streams(bus))
        while "not ready to declare" not in caplog.text:  # it meets the forming cluster
            assert not declaring.done(), declaring
            await asyncio.sleep(0.05)
        cluster.start(1)
        cluster.start(2)
        await asyncio.wait_for(declaring, 60)
        for stream in (sj.CMD_STREAM, sj.EVT_STREAM, f"KV_{sj.LEADER_BUCKET}"):
            info = await bus.js.stream_info(stream)
            assert info.config.num_replicas == 3 and info.cluster is not None, stream
            assert len(info.cluster.replicas or []) == 2, stream  # a leader and two followers
    finally:
        await bus.close()
    retries = [r for r in caplog.records if "not ready to declare" in r.getMessage()]
    assert retries and all(r.levelno == logging.WARNING for r in retries)


async def test_declaration_gives_up_after_declare_wait(cluster: Cluster) -> None:
    alone = cluster.start(0)  # its peers never come
    settings = BusSettings(nats_url=alone.url, stream_replicas=3, declare_wait=2.0)
    bus = await connect(settings, name="declare-test")
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as caught:  # noqa: PT011 - whichever error the cluster gave last
            await declare_streams(bus)
        assert time.monotonic() - started < 10, caught.value
    finally:
        await bus.close()
