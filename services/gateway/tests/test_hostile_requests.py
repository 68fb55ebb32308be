"""Requests that used to be 500s or to hang (issue 12, item 5): bodies too deep for any parser or not
UTF-8 are 400 problems; a body that stops arriving is dropped with a 408; while NATS or the database
cannot be reached, requests get 503 problems with ``Retry-After``."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time

import httpx
import pytest

from jobwire.gateway import serve
from jobwire.runtime.settings import BusSettings
from jobwire.store import migrate
from tests.fixtures.postgres import start_postgres, stop_postgres
from tests.support.private_nats import PrivateNats, free_port

from .conftest import bearer
from .test_submit import assert_problem

pytestmark = pytest.mark.integration
DEEP = b"[" * 100_000 + b"]" * 100_000
JSON = {"content-type": "application/json"}
KEY = "k" * 32


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/jobs", DEEP),
        ("POST", "/v1/jobs", b'{"command": ["x"], "env": {"A": ' + DEEP + b"}}"),
        ("POST", "/v1/jobs", b'{"command": ["\xff\xfe"]}'),
        ("PUT", "/v1/templates/t", DEEP),
        ("PUT", "/v1/quotas/alice", DEEP),
        ("POST", "/v1/tokens", DEEP),
        ("POST", "/v1/tokens", b'{"owner": "\xc3\x28"}'),
    ],
)
async def test_too_deep_or_not_utf8_bodies_are_400(gateway, seed, method, path, body):
    r = await gateway.request(method, path, content=body, headers=JSON)
    assert_problem(r, 400, detail_has="the request body")
    assert await seed.commands() == []


async def test_a_deep_yaml_spec_in_a_form_is_400(gateway, seed):
    files = {
        "spec": ("spec.yaml", b"command: " + b"[" * 100_000, "application/yaml"),
        "code": ("x.py", b"print(1)", "text/plain"),
    }
    assert_problem(await gateway.post("/v1/jobs", files=files), 400, detail_has="nests too deeply")
    assert await seed.commands() == []


async def test_a_body_that_stops_arriving_is_dropped(serve_gateway, admin_token, seed):
    async with serve_gateway(body_read_timeout=1.0) as client:
        port = httpx.URL(str(client.base_url)).port
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # the gateway shares this loop
        writer.write(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + admin_token.encode() + b"\r\nContent-Length: 100\r\n\r\n"
            b'{"comm'
        )
        await writer.drain()
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 10)  # until the gateway closes the connection
        waited = time.monotonic() - started
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"application/problem+json" in answer and b"stopped arriving" in answer
        assert 0.9 < waited < 5, waited
        # a stream's own wait for a disconnect is not a body: an SSE stream outlives the timeout
        job_id = await seed.job(state="running", attempt=1)
        async with client.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers={"accept": "text/event-stream"}
        ) as r:
            assert r.status_code == 200
            started = time.monotonic()
            async for _ in r.aiter_lines():
                if time.monotonic() - started > 2.5:
                    break
        assert time.monotonic() - started > 2.5


async def test_the_database_down_is_503_with_retry_after(settings, clean_bus):
    down = f"postgresql+asyncpg://jobwire:x@127.0.0.1:{free_port()}/jobwire"
    changed = dataclasses.replace(settings, database_url=down, api_key=KEY)
    async with serve(changed, port=0) as url, httpx.AsyncClient(base_url=url, headers=bearer(KEY)) as c:
        for method, path, body in [
            ("GET", "/v1/jobs", None),
            ("GET", "/v1/nodes", None),
            ("POST", "/v1/jobs", {"command": ["true"]}),
            ("GET", "/ready", None),
        ]:
            r = await c.request(method, path, json=body)
            assert_problem(r, 503)
            assert int(r.headers["retry-after"]) > 0, path


async def test_nats_down_is_503_with_retry_after_and_back_when_it_returns(settings, tmp_path, seed):
    nats = PrivateNats(tmp_path / "nats")
    nats.start()
    job_id = await seed.job(state="succeeded", attempt=1)
    changed = dataclasses.replace(settings, bus=BusSettings(nats_url=nats.url), api_key=KEY)
    try:
        async with (
            serve(changed, port=0) as url,
            httpx.AsyncClient(base_url=url, headers=bearer(KEY), timeout=30) as c,
        ):
            assert (await c.post("/v1/jobs", json={"command": ["true"]})).status_code == 202
            nats.stop()
            await asyncio.sleep(0.5)
            for method, path in [("POST", "/v1/jobs"), ("GET", f"/v1/jobs/{job_id}/logs")]:
                r = await c.request(method, path, json={"command": ["true"]} if method == "POST" else None)
                assert_problem(r, 503)
                assert int(r.headers["retry-after"]) > 0
            nats.start()
            deadline = time.monotonic() + 20
            while (r := await c.post("/v1/jobs", json={"command": ["true"]})).status_code != 202:
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "the gateway never came back"
                await asyncio.sleep(0.5)
    finally:
        nats.stop()


async def test_postgres_going_down_under_a_running_gateway_is_503_and_it_recovers(settings, clean_bus):
    """The database stops while the gateway holds pooled connections to it (a restart, a failover):
    reads are 503 problems with ``Retry-After`` — not 500s from the dead connections —, a submit is
    still queued on the bus, and the same process answers again once the server is back."""
    server = start_postgres()
    try:
        url = server.database_url("postgres")
        await migrate(url)
        changed = dataclasses.replace(settings, database_url=url, api_key=KEY)
        async with (
            serve(changed, port=0) as base,
            httpx.AsyncClient(base_url=base, headers=bearer(KEY), timeout=30) as c,
        ):
            for path in ("/v1/jobs", "/v1/nodes", "/ready"):
                assert (await c.get(path)).status_code == 200, path  # the pool now holds connections
            _pg_ctl(server, "stop", "-m", "immediate")
            for method, path, body in [
                ("GET", "/v1/jobs", None),
                ("GET", "/v1/nodes", None),
                ("GET", "/v1/quotas", None),
                ("GET", "/ready", None),
            ]:
                r = await c.request(method, path, json=body)
                assert_problem(r, 503)
                assert int(r.headers["retry-after"]) > 0, path
            # a submit needs no database: it is queued on the bus, nothing lost (the scheduler stores it)
            assert (await c.post("/v1/jobs", json={"command": ["true"]})).status_code == 202
            port = server.url.port
            _pg_ctl(
                server, "start", "-l", str(server.base / "postgres.log"), "-o", f"-p {port} -k {server.base}"
            )
            deadline = time.monotonic() + 60
            while (r := await c.get("/v1/jobs")).status_code != 200:
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "the gateway never came back"
                await asyncio.sleep(0.5)
    finally:
        stop_postgres(server)


def _pg_ctl(server, *args: str) -> None:  # type: ignore[no-untyped-def]
    data = str(server.base / "data")
    subprocess.run(
        [*(server.as_user or []), server.pg_ctl, "-D", data, "-w", *args], check=True, capture_output=True
    )
