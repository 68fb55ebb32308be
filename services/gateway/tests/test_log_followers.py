"""Stalled log followers cost bounded memory (issue 12, item 4).

A real gateway process, a finished job with a 50 MB log in JetStream, and 20 raw SSE followers whose
sockets never read: the gateway reads from JetStream only as fast as each client takes it, so its RSS
stays under 1.2x its idle size plus ``PER_FOLLOWER`` each; the 21st follower of the same owner is a 429
problem with ``Retry-After``; once they close, their consumers are gone and the memory with them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from jobwire.contracts.v1 import subjects as sj

from .conftest import bearer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MIB = 1024 * 1024
LOG_BYTES = 50 * MIB
CHUNK = 64 * 1024
FOLLOWERS = 20
#: what one stalled follower may cost the gateway: two pulled batches of 8 chunks of 64 KiB
#: (jetstream.BATCH), the event being written, and the socket's write buffer (docs/security.md)
PER_FOLLOWER = int(1.5 * MIB)


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stalled_follower(port: int, path: str, token: str) -> socket.socket:
    """An SSE request on a socket that is never read (a small receive buffer, so it fills soon)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    return s


async def consumers(bus) -> int:  # type: ignore[no-untyped-def]
    return (await bus.js.stream_info(sj.LOG_STREAM)).state.consumer_count


async def settle(pid: int, seconds: float = 3.0) -> int:
    """The highest RSS seen over a few seconds (followers fill their buffers meanwhile)."""
    top, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        top = max(top, rss(pid))
        await asyncio.sleep(0.2)
    return top


async def test_twenty_stalled_followers_cost_bounded_memory_and_the_21st_is_429(
    settings, clean_bus, seed, mint, admin_token
):
    alice = await mint("alice")
    job_id = await seed.job(state="succeeded", attempt=1, owner="alice")
    line = ("x" * 127 + "\n") * (CHUNK // 128)
    for _ in range(LOG_BYTES // CHUNK):
        await seed.chunk(job_id, line)
    await seed.chunk(job_id, "", eof=True)
    await seed.chunk(job_id, "", stream="stderr", eof=True)
    small = await seed.job(state="succeeded", attempt=1, owner="alice")
    await seed.chunk(small, "hello\n")
    await seed.chunk(small, "", eof=True)
    await seed.chunk(small, "", stream="stderr", eof=True)

    port = free_port()
    env = {
        **os.environ,
        "JOBWIRE_DATABASE_URL": settings.database_url,
        "JOBWIRE_NATS_URL": settings.bus.nats_url,
        "JOBWIRE_GATEWAY_PORT": str(port),
        "JOBWIRE_GATEWAY_TRACING": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobwire.gateway", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    sockets: list[socket.socket] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=bearer(alice)) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the gateway did not start"
                await asyncio.sleep(0.2)
            # warm up every code path the followers use, on a small log
            for _ in range(3):
                r = await client.get(f"/v1/jobs/{small}/logs", params={"follow": "true"}, headers=SSE)
                assert r.status_code == 200 and '"hello\\n"' in r.text
            base_consumers = await consumers(clean_bus)
            idle = await settle(proc.pid, 1.0)

            path = f"/v1/jobs/{job_id}/logs?follow=true"
            sockets = [stalled_follower(port, path, alice) for _ in range(FOLLOWERS)]
            deadline = time.monotonic() + 15
            while await consumers(clean_bus) < base_consumers + FOLLOWERS:  # all 20 are being served
                assert time.monotonic() < deadline, "not every follower was served"
                await asyncio.sleep(0.2)
            loaded = await settle(proc.pid, 8.0)
            bound = 1.2 * idle + FOLLOWERS * PER_FOLLOWER
            print(f"idle {idle / MIB:.1f} MiB, 20 stalled {loaded / MIB:.1f} MiB, bound {bound / MIB:.1f}")
            assert loaded < bound, f"{loaded / MIB:.1f} MiB with 20 stalled followers (idle {idle / MIB:.1f})"

            r = await client.get(f"/v1/jobs/{small}/logs", headers=SSE)
            assert r.status_code == 429 and r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["retry-after"]) > 0 and r.json()["limit"] == "streams_per_owner"
            # another owner is not held back by alice's followers
            r = await client.get(f"/v1/jobs/{small}/logs", headers=bearer(admin_token))
            assert r.status_code == 200 and r.text == "hello\n"

            for s in sockets:
                s.close()
            sockets = []
            deadline = time.monotonic() + 15
            while await consumers(clean_bus) != base_consumers:
                assert time.monotonic() < deadline, "closed followers left their consumers behind"
                await asyncio.sleep(0.2)
            after = await settle(proc.pid, 1.0)
            print(f"after closing them: {after / MIB:.1f} MiB")
            assert after < bound
            # what they held is free for reuse: a second round of 20 grows nothing (no leak per follower)
            sockets = [stalled_follower(port, path, alice) for _ in range(FOLLOWERS)]
            deadline = time.monotonic() + 15
            while await consumers(clean_bus) < base_consumers + FOLLOWERS:
                assert time.monotonic() < deadline, "not every follower of the second round was served"
                await asyncio.sleep(0.2)
            again = await settle(proc.pid, 8.0)
            print(f"a second round of 20: {again / MIB:.1f} MiB")
            # allocator noise under load was 4 MiB in one CI run; a leak of followers' buffers is far more
            assert again < min(bound, loaded + 8 * MIB)
            for s in sockets:
                s.close()
            sockets = []
            deadline = time.monotonic() + 15
            while await consumers(clean_bus) != base_consumers:
                assert time.monotonic() < deadline, "closed followers left their consumers behind"
                await asyncio.sleep(0.2)
            r = await client.get(f"/v1/jobs/{small}/logs", headers=SSE)  # the slots are free again
            assert r.status_code == 200
    finally:
        for s in sockets:
            s.close()
        proc.terminate()
        await proc.wait()


SSE = {"accept": "text/event-stream"}
