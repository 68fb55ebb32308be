"""The dashboard's server side: its files at /ui (public, gateway-local, locked down by CSP), and the two API
routes it relies on: ``/v1/whoami`` and the all-jobs feed ``/v1/events`` (owner-filtered like every read).
The pages themselves run in a real browser in tests/e2e/test_dashboard_e2e.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import httpx
import pytest

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.gateway.ui import STATIC_DIR

pytestmark = pytest.mark.integration


async def test_ui_is_served_with_every_asset_local_and_a_strict_csp(gateway) -> None:
    anonymous = httpx.AsyncClient(base_url=str(gateway.base_url))
    async with anonymous:
        page = await anonymous.get("/ui")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert "set-cookie" not in page.headers
        referenced = set(re.findall(r'(?:src|href)="([^"#]+)"', page.text))
        assert {"/ui/app.js", "/ui/style.css", "/ui/favicon.svg"} <= referenced
        for path in STATIC_DIR.iterdir():
            r = await anonymous.get(f"/ui/{path.name}")
            assert r.status_code == 200, path.name
            text = r.text.replace("http://www.w3.org/2000/svg", "")  # a namespace name, never fetched
            # nothing fetched from elsewhere: no absolute URL to another host in any file
            assert not re.search(r"https?://", text), path.name
            for module in re.findall(r'from "([^"]+)"', text):
                assert module.startswith("./"), (path.name, module)
        # the data behind it is not public
        assert (await anonymous.get("/v1/whoami")).status_code == 401
        assert (await anonymous.get("/v1/events")).status_code == 401


async def test_whoami_says_owner_and_scopes(gateway, mint) -> None:
    token = await mint("alice", scopes=["jobs:read", "jobs:submit"])
    r = await gateway.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json() == {"owner": "alice", "scopes": ["jobs:read", "jobs:submit"], "admin": False}
    admin = (await gateway.get("/v1/whoami")).json()
    assert admin["owner"] == "root" and admin["admin"] is True


async def _publish(bus, job_id: str, state: str, owner: str) -> int:  # type: ignore[no-untyped-def]
    msg = v1.JobTransitioned(
        job_id=job_id, state=v1.JobState(state), previous=None, at=datetime.now(UTC), owner=owner
    )
    return int((await bus.publish(sj.event_subject(job_id, state), msg)).seq)


async def _read_feed(client: httpx.AsyncClient, headers: dict[str, str], want: int) -> list[dict]:
    """The first ``want`` transitions the feed sends (it never ends by itself)."""
    seen: list[dict] = []
    async with client.stream("GET", "/v1/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        async for line in r.aiter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                event[key] = value.strip()
            elif not line and event:
                if event.get("event") == "transition":
                    seen.append(event)
                event = {}
                if len(seen) >= want:
                    break
    return seen


async def test_feed_sends_live_transitions_of_the_callers_jobs_only(gateway, seed, mint) -> None:
    alice = {"Authorization": f"Bearer {await mint('alice')}"}
    before = await _publish(seed.bus, v1.new_job_id(), "queued", "alice")
    mine, theirs = v1.new_job_id(), v1.new_job_id()

    async def later() -> None:
        await asyncio.sleep(0.6)  # after the feed is open: it starts at the stream's end
        await _publish(seed.bus, theirs, "queued", "bob")
        await _publish(seed.bus, mine, "queued", "alice")
        await _publish(seed.bus, theirs, "running", "bob")
        await _publish(seed.bus, mine, "running", "alice")

    task = asyncio.create_task(later())
    events = await asyncio.wait_for(_read_feed(gateway, alice, 2), 10)
    await task
    got = [v1.decode(e["data"].encode(), v1.JobTransitioned) for e in events]
    assert [(e.job_id, e.state.value) for e in got] == [(mine, "queued"), (mine, "running")]
    assert all(int(e["id"]) > before for e in events)

    # An admin sees everyone's; Last-Event-ID replays from just after the given sequence.
    replay = await asyncio.wait_for(_read_feed(gateway, {"Last-Event-ID": str(before)}, 4), 10)
    assert [v1.decode(e["data"].encode(), v1.JobTransitioned).job_id for e in replay] == [
        theirs,
        mine,
        theirs,
        mine,
    ]
