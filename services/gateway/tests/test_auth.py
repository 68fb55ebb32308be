"""Every route against every kind of bad credential, per-user isolation, shared keys, no silent bypass,
and token secrets never leaking into logs, events or the database."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text, update

from jobwire.contracts import v1
from jobwire.gateway import GatewaySettings, create_app
from jobwire.store.models import TokenRow

from .conftest import audit_log, bearer

pytestmark = pytest.mark.integration

JOB = "{job}"
SPEC = {"command": ["true"], "expected_runtime": 1}
#: (method, path, scope it needs, JSON body)
ROUTES = [
    ("POST", "/v1/jobs", "jobs:submit", SPEC),
    ("GET", "/v1/jobs", "jobs:read", None),
    ("GET", "/v1/jobs/counts", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/logs", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/events?follow=false", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/progress", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/artifacts", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/artifacts/out.txt", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/files", "jobs:read", None),
    ("GET", f"/v1/jobs/{JOB}/files/work/train.log", "jobs:read", None),
    ("POST", f"/v1/jobs/{JOB}/cancel", "jobs:cancel", None),
    ("POST", f"/v1/jobs/{JOB}/hold", "jobs:cancel", None),
    ("POST", f"/v1/jobs/{JOB}/release", "jobs:cancel", None),
    ("POST", f"/v1/jobs/{JOB}/requeue", "jobs:cancel", None),
    ("GET", "/v1/programs", "jobs:read", None),
    ("POST", "/v1/workflows", "jobs:submit", {"jobs": [{"name": "x", "command": ["true"]}]}),
    ("GET", "/v1/workflows", "jobs:read", None),
    ("GET", f"/v1/workflows/{JOB}", "jobs:read", None),
    ("DELETE", f"/v1/jobs/{JOB}", "jobs:cancel", None),
    ("GET", "/v1/nodes", "jobs:read", None),
    ("POST", "/v1/tokens", "admin", {"owner": "mallory", "admin": True}),
    ("GET", "/v1/tokens", "admin", None),
    ("DELETE", "/v1/tokens/tok_0000000000000000", "admin", None),
    ("GET", "/v1/quotas", "admin", None),
    ("PUT", "/v1/quotas/bob", "admin", {"max_active": 0}),
    ("DELETE", "/v1/quotas/bob", "admin", None),
    ("GET", "/v1/audit", "admin", None),
]
ALL_USER = ["jobs:submit", "jobs:read", "jobs:cancel", "inputs:read", "inputs:write", "templates:write"]


def is_problem(r: httpx.Response, status: int) -> bool:
    return r.status_code == status and r.headers["content-type"].startswith("application/problem+json")


async def _expire(sessions, secret: str) -> None:
    from jobwire.store.tokens import hash_secret

    async with sessions() as s, s.begin():
        await s.execute(
            update(TokenRow)
            .where(TokenRow.secret_hash == hash_secret(secret))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def _state(sessions, seed) -> tuple:
    async with sessions() as s:
        counts = [
            (await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in ("jobs", "api_tokens", "quotas", "admissions")
        ]
        revoked = (
            await s.execute(text("SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL"))
        ).scalar()
    return counts, revoked, len(await seed.commands())


async def test_every_route_refuses_bad_credentials_and_changes_nothing(
    gateway, mint, seed, sessions, scheduler
):
    job = await seed.job(owner="alice", state="running", attempt=1, node="n1")
    expired = await mint("alice", admin=True, days=1)
    await _expire(sessions, expired)
    revoked = await mint("alice", admin=True)
    tok_id = (await gateway.get("/v1/tokens", params={"owner": "alice"})).json()["items"][-1]["id"]
    assert (await gateway.delete(f"/v1/tokens/{tok_id}")).status_code == 200
    bob = await mint("bob")
    before = await _state(sessions, seed)

    for method, path, scope, body in ROUTES:
        url = path.replace(JOB, job)
        lacking = await mint("alice", scopes=[s for s in ALL_USER if s != scope])
        cases = {
            "none": ({}, 401),
            "malformed": ({"Authorization": "Basic YWxpY2U6eA=="}, 401),
            "bad": (bearer("jw_" + "x" * 43), 401),
            "expired": (bearer(expired), 401),
            "revoked": (bearer(revoked), 401),
            "lacking scope": (bearer(lacking), 403),
        }
        if scope == "admin":
            cases["another user"] = (bearer(bob), 403)
        elif JOB in path:
            cases["another user"] = (bearer(bob), 404)
        for case, (headers, status) in cases.items():
            # the gateway fixture's admin header is replaced, or removed for "none"
            req = gateway.build_request(method, url, json=body, headers=headers)
            if not headers:
                del req.headers["Authorization"]
            r = await gateway.send(req)
            assert is_problem(r, status), (method, path, case, r.status_code, r.text)
            if status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer")
            assert "jw_" not in r.text, (method, path, case)
    async with sessions() as s:  # minus the lacking-scope tokens minted on the way
        await s.execute(text("DELETE FROM api_tokens WHERE owner = 'alice' AND scopes NOT LIKE '%admin%'"))
        await s.commit()
    assert await _state(sessions, seed) == before
    assert (await gateway.get(f"/v1/jobs/{job}")).json()["state"] == "running"


async def test_users_see_only_their_own_jobs(gateway, mint, seed):
    alice, bob = await mint("alice"), await mint("bob")
    a = await seed.job(owner="alice", state="succeeded", attempt=1)
    b = await seed.job(owner="bob", state="succeeded", attempt=1)
    await seed.chunk(b, "bob's secret output", eof=True)
    await seed.event(b, "succeeded", previous="running", attempt=1)
    as_alice = bearer(alice)

    listed = (await gateway.get("/v1/jobs", headers=as_alice)).json()["items"]
    assert [j["id"] for j in listed] == [a]
    assert (await gateway.get("/v1/jobs", params={"owner": "bob"}, headers=as_alice)).json()["items"] == []
    counts = (await gateway.get("/v1/jobs/counts", headers=as_alice)).json()
    assert counts["total"] == 1 and counts["by_state"]["succeeded"] == 1 and counts["by_state"]["queued"] == 0
    theirs = await gateway.get("/v1/jobs/counts", params={"owner": "bob"}, headers=as_alice)
    assert theirs.json()["total"] == 0
    for suffix in (
        "",
        "/logs",
        "/events?follow=false",
        "/progress",
        "/artifacts",
        "/artifacts/x",
        "/files",
        "/files/x",
    ):
        r = await gateway.get(f"/v1/jobs/{b}{suffix}", headers=as_alice)
        assert is_problem(r, 404), suffix
        assert "bob" not in r.text
    assert is_problem(await gateway.post(f"/v1/jobs/{b}/cancel", headers=as_alice), 404)
    assert is_problem(await gateway.delete(f"/v1/jobs/{b}", headers=as_alice), 404)
    assert "secret output" in (await gateway.get(f"/v1/jobs/{b}/logs", headers=bearer(bob))).text
    # admins see everyone's, and filter by owner
    assert {j["id"] for j in (await gateway.get("/v1/jobs")).json()["items"]} == {a, b}
    assert [j["id"] for j in (await gateway.get("/v1/jobs", params={"owner": "bob"})).json()["items"]] == [b]
    assert (await gateway.get("/v1/jobs/counts")).json()["by_state"]["succeeded"] == 2
    assert (await gateway.get("/v1/jobs/counts", params={"owner": "bob"})).json()["total"] == 1
    # a user's submit is theirs
    r = await gateway.post("/v1/jobs", json=SPEC, headers=as_alice)
    assert r.json()["owner"] == "alice"


async def test_token_admin_over_rest_shows_the_secret_once(gateway, admin_token, scheduler):
    r = await gateway.post("/v1/tokens", json={"owner": "alice", "days": 30, "scopes": ["jobs:read"]})
    assert r.status_code == 201, r.text
    new = r.json()
    secret = new["secret"]
    assert secret.startswith("jw_") and len(secret) >= 43
    assert new["token"]["scopes"] == ["jobs:read"] and new["token"]["expires_at"]
    listed = await gateway.get("/v1/tokens")
    assert secret not in listed.text and admin_token not in listed.text
    assert {t["owner"] for t in listed.json()["items"]} == {"root", "alice"}
    assert (await gateway.get("/v1/jobs", headers=bearer(secret))).status_code == 200
    assert is_problem(await gateway.post("/v1/jobs", json=SPEC, headers=bearer(secret)), 403)
    revoked = await gateway.delete(f"/v1/tokens/{new['token']['id']}")
    assert revoked.json()["revoked_at"]
    assert is_problem(await gateway.get("/v1/jobs", headers=bearer(secret)), 401)
    assert is_problem(await gateway.delete("/v1/tokens/tok_nope"), 404)
    bad = await gateway.post("/v1/tokens", json={"owner": "x", "scopes": ["root"]})
    assert is_problem(bad, 422) and "unknown scope" in bad.json()["detail"]
    for owner in ("mallory\n", "mallory\r\n", "a.b\n"):  # Python's `$` alone admits a final newline
        bad = await gateway.post("/v1/tokens", json={"owner": owner, "scopes": ["jobs:read"]})
        assert is_problem(bad, 422), (owner, bad.text)


async def test_every_route_declares_a_scope_or_is_public(settings):
    app = create_app(settings)
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if route.path.startswith("/schema") or set(handler.http_methods) == {"OPTIONS"}:
                continue  # the OpenAPI pages are public; Litestar's own OPTIONS answers need admin
            assert handler.opt.get("scope") or handler.opt.get("public"), route.path


async def _gateway_process(settings: GatewaySettings, **env: str) -> tuple[int, str]:
    environ = {
        **os.environ,
        "JOBWIRE_DATABASE_URL": settings.database_url,
        "JOBWIRE_NATS_URL": settings.bus.nats_url,
        "JOBWIRE_GATEWAY_PORT": "0",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobwire.gateway",
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_no_silent_bypass(settings, clean_bus):
    rc, out = await _gateway_process(settings)  # a database without any token, no keys
    assert rc != 0 and "no credential source" in out
    rc, out = await _gateway_process(settings, JOBWIRE_GATEWAY_API_KEY="   ")  # blank is no key
    assert rc != 0 and "JOBWIRE_GATEWAY_API_KEY is set but blank" in out
    rc, out = await _gateway_process(settings, JOBWIRE_GATEWAY_AUTH="off", JOBWIRE_GATEWAY_HOST="0.0.0.0")
    assert rc != 0 and "refused when listening on 0.0.0.0" in out
    off_outside = GatewaySettings(host="0.0.0.0", auth="off", database_url=settings.database_url)
    with pytest.raises(ValueError, match="loopback"):
        create_app(off_outside)
    with pytest.raises(ValueError, match="must be one of"):
        create_app(GatewaySettings(auth="none"))


async def test_auth_off_on_loopback_and_shared_keys(serve_gateway, tmp_path):
    async with serve_gateway(token=None, auth="off") as client:
        assert (await client.get("/v1/jobs")).status_code == 200
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nsecond-key-0123456789\nops ops-key-0123456789\n")
    async with serve_gateway(
        token="first-key-0123456789", api_key="first-key-0123456789", api_keys_file=str(keys)
    ) as client:
        r = await client.post("/v1/jobs", json=SPEC)
        assert r.json()["owner"] == "team"
        r = await client.post("/v1/jobs", json=SPEC, headers=bearer("ops-key-0123456789"))
        assert r.json()["owner"] == "ops"
        assert is_problem(await client.get("/v1/jobs", headers=bearer("ops-key-wrong")), 401)


async def test_token_secrets_never_reach_logs_events_or_the_database(
    gateway, mint, seed, sessions, caplog, scheduler
):
    caplog.set_level(logging.DEBUG)
    seen: list[bytes] = []  # everything published on the bus, the scheduler's token bucket included

    async def keep(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(msg.subject.encode() + msg.data + repr(msg.headers).encode())

    sub = await seed.bus.nc.subscribe(">", cb=keep)
    alice = await mint("alice")
    r = await gateway.post("/v1/tokens", json={"owner": "carol"})
    assert r.status_code == 201
    carol = r.json()["secret"]
    for secret in (alice, carol):
        assert (await gateway.post("/v1/jobs", json=SPEC, headers=bearer(secret))).status_code < 300
        await gateway.get("/v1/jobs/nope", headers=bearer(secret))
        await gateway.get("/v1/jobs", headers=bearer(secret + "x"))
    await gateway.get("/v1/audit")
    async with sessions() as s:
        tables = [r[0] for r in await s.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
        dump = ""
        for table in tables:
            for row in await s.execute(text(f"SELECT * FROM {table}")):
                dump += repr(tuple(row)) + "\n"
    await sub.unsubscribe()
    published = b"".join(seen)
    assert b"token_create" in published and b"jobwire_tokens" in published
    for secret in (alice, carol):
        assert secret not in dump
        assert secret.encode() not in published
        assert secret not in caplog.text
        assert secret[3:20] not in dump


async def test_a_submit_carries_its_audit_record_and_sends_its_own_only_when_answered_otherwise(
    gateway, mint, seed
):
    """One message per submit: the SubmitJob carries the record (201, keyed by the job id); no scheduler
    answers here, so the client gets 202 and the gateway also sends the record with that status under the
    same key, which the scheduler writes over the carried one (one row, the status the client got)."""
    alice = await mint("alice")
    r = await gateway.post("/v1/jobs", json=SPEC, headers=bearer(alice))
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    (command,) = [v1.decode(m.data, v1.Command) for m in await seed.commands()]
    assert isinstance(command, v1.SubmitJob) and command.audit is not None
    carried = command.audit
    assert (carried.actor, carried.action, carried.status) == ("alice", "jobs.submit", 201)
    assert carried.target == job
    assert carried.request == job and carried.address == "127.0.0.1" and carried.token_id
    sent = await seed.audit()
    assert [(e.actor, e.status, e.target, e.request) for e in sent] == [("alice", 202, job, job)]
    # a refused submit publishes no command, so its record is sent as before, with no key
    assert (await gateway.post("/v1/jobs", json={"command": []}, headers=bearer(alice))).status_code == 422
    assert [(e.status, e.request) for e in (await seed.audit())[1:]] == [(422, None)]


async def test_state_changes_are_audited(gateway, mint, scheduler):
    alice = await mint("alice")
    job = (await gateway.post("/v1/jobs", json=SPEC, headers=bearer(alice))).json()["id"]
    await gateway.post(f"/v1/jobs/{job}/cancel", headers=bearer(alice))
    await gateway.get("/v1/jobs", headers=bearer(alice))  # reads are not audited
    await gateway.post("/v1/jobs", json=SPEC, headers=bearer("jw_" + "y" * 43))
    await gateway.put("/v1/quotas/alice", json={"max_active": 3})
    entries = await audit_log(gateway, 4)
    got = [(e["actor"], e["action"], e["status"], e["target"]) for e in reversed(entries)]
    assert got[0] == ("alice", "jobs.submit", got[0][2], job) and got[0][2] in (201, 202)
    assert got[1][:2] == ("alice", "jobs.cancel") and got[1][3] == job
    assert got[2] == (None, "jobs.submit", 401, None)
    assert got[3] == ("root", "quotas.set", 200, "alice")
    assert [e["target"] for e in entries].count(job) == 2  # one row for the submit, one for the cancel
    assert all(e["address"] == "127.0.0.1" and e["method"] != "GET" for e in entries)
    assert is_problem(await gateway.get("/v1/audit", headers=bearer(alice)), 403)
    mine = (await gateway.get("/v1/audit", params={"actor": "alice", "limit": 1})).json()
    assert len(mine["items"]) == 1 and mine["next_before"]


def test_the_gateway_refuses_to_start_with_a_route_that_skips_authentication():
    """Authentication is the app's before_request hook; a controller setting its own would replace it
    on its routes, so building such an app fails instead of serving them unauthenticated."""
    from litestar import Controller, Litestar, get

    from jobwire.gateway.auth.guard import authorize_request, check_every_route

    async def other(request: object) -> None:
        return None

    class Open(Controller):
        path = "/open"
        before_request = other

        @get("/")
        async def read(self) -> str:
            return "secret"

    class Closed(Controller):
        path = "/closed"

        @get("/")
        async def read(self) -> str:
            return "fine"

    check_every_route(Litestar([Closed], before_request=authorize_request))
    with pytest.raises(RuntimeError, match="/open"):
        check_every_route(Litestar([Closed, Open], before_request=authorize_request))
