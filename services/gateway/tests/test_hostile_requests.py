"""Requests that used to be 500s or to hang (issue 12, item 5): bodies too deep for any parser or not
UTF-8 are 400 problems; a body that stops arriving is dropped with a 408; while NATS or the database
cannot be reached, requests get 503 problems with ``Retry-After``."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import pytest

from jobwire.gateway import serve
from jobwire.runtime.settings import BusSettings
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
