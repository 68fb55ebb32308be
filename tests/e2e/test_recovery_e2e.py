"""Never lose a job: crashes of the scheduler and executors in the middle of work."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from pathlib import Path

import httpx
import pytest

from jobwire.stack.stack import ExecutorConfig

from .conftest import make_stack, submit, wait_for, wait_state

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def all_jobs(api: httpx.Client) -> list[dict]:
    out, cursor = [], None
    while True:
        page = api.get("/v1/jobs", params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
        out += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_scheduler_killed_while_200_jobs_are_submitted(tmp_path: Path, db: str, request):
    database_url = request.getfixturevalue("postgres_url") if db == "postgresql" else None
    ran = tmp_path / "ran.txt"
    stack = make_stack(
        tmp_path / "home", [ExecutorConfig(node="crash-a", slots=8)], database_url=database_url
    )
    stack.start()
    try:
        accepted: list[str] = []

        async def client(n: int, c: httpx.AsyncClient) -> None:
            for _ in range(n):
                spec = {"command": ["sh", "-c", f'echo "$JOBWIRE_JOB_ID" >> {ran}'], "expected_runtime": 10}
                key = uuid.uuid4().hex  # one key per submission, reused by its retries
                for _ in range(50):  # the gateway may be unreachable for a moment; retry like a client
                    try:
                        r = await c.post("/v1/jobs", json=spec, headers={"idempotency-key": key})
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
                assert r.status_code in (201, 202), r.text
                accepted.append(r.json()["id"])

        async def load() -> None:
            async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as c:
                tasks = [asyncio.create_task(client(20, c)) for _ in range(10)]
                while len(accepted) < 50:
                    await asyncio.sleep(0.01)
                stack.services["scheduler"].kill()  # SIGKILL mid-stream
                await asyncio.sleep(1.0)
                stack.start_service("scheduler")
                await asyncio.gather(*tasks)

        asyncio.run(load())
        assert len(accepted) == 200 and len(set(accepted)) == 200
        with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as api:

            def finished():
                jobs = {j["id"]: j for j in all_jobs(api)}
                return jobs if all(jobs.get(i, {}).get("state") in TERMINAL for i in accepted) else None

            jobs = wait_for(finished, timeout=180, every=1, what="all 200 jobs to finish")
            bad = {
                i: (jobs[i]["state"], jobs[i]["transitions"])
                for i in accepted
                if jobs[i]["state"] != "succeeded"
            }
            assert not bad, bad
            for i in accepted:
                terminal = [t for t in jobs[i]["transitions"] if t["state"] in TERMINAL]
                assert len(terminal) == 1, jobs[i]["transitions"]
        runs = collections.Counter(ran.read_text().split())
        assert set(runs) == set(accepted)  # none lost
        assert max(runs.values()) == 1  # none run twice
    finally:
        stack.stop()


def test_executor_killed_and_restarted_readopts_running_jobs(tmp_path: Path):
    # The node timeout outlasts the restart: on 2 busy cores an executor takes over 4 s to come back, and
    # this test is about re-adoption across a restart, not about a node given up for lost.
    stack = make_stack(
        tmp_path / "home",
        [ExecutorConfig(node="adopt-a", slots=4)],
        env={"JOBWIRE_SCHEDULER_NODE_TIMEOUT": "20"},
    )
    stack.start()
    try:
        with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as api:
            ok = submit(api, command=["sh", "-c", "sleep 3; echo survived"], expected_runtime=10)
            bad = submit(api, command=["sh", "-c", "sleep 3; exit 7"], expected_runtime=10)
            quick = submit(api, command=["sh", "-c", "sleep 1; exit 4"], expected_runtime=10)
            for j in (ok, bad, quick):
                wait_state(api, j["id"], "running")
            stack.services["executor-adopt-a"].kill()
            time.sleep(2)  # `quick` ends while no executor watches it
            stack.start_service("executor-adopt-a")
            done = {j["id"]: wait_state(api, j["id"], TERMINAL, timeout=30) for j in (ok, bad, quick)}
            assert (done[ok["id"]]["state"], done[ok["id"]]["exit_code"]) == ("succeeded", 0)
            assert (done[bad["id"]]["state"], done[bad["id"]]["exit_code"]) == ("failed", 7)
            assert (done[quick["id"]]["state"], done[quick["id"]]["exit_code"]) == ("failed", 4)
            for j in done.values():
                assert j["attempt"] == 1 and "lost" not in [t["state"] for t in j["transitions"]]
            assert "survived" in api.get(f"/v1/jobs/{ok['id']}/logs").text
    finally:
        stack.stop()


def test_executor_gone_for_good_jobs_are_lost_then_run_elsewhere(tmp_path: Path):
    stack = make_stack(
        tmp_path / "home", [ExecutorConfig(node="gone-a", slots=1), ExecutorConfig(node="gone-b", slots=1)]
    )
    stack.start()
    try:
        with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as api:
            wait_for(lambda: len(api.get("/v1/nodes").json()["items"]) == 2, what="two nodes")
            free = submit(
                api,
                command=["sh", "-c", "sleep 4; echo attempt $JOBWIRE_ATTEMPT"],
                expected_runtime=5,
                max_attempts=2,
            )
            first = wait_state(api, free["id"], "running")
            victim = first["node"]
            stack.services[f"executor-{victim}"].kill()
            done = wait_state(api, free["id"], TERMINAL, timeout=60)
            states = [t["state"] for t in done["transitions"]]
            assert states[:6] == ["queued", "starting", "running", "lost", "queued", "starting"]
            assert done["state"] == "succeeded" and done["attempt"] == 2 and done["node"] != victim
            assert "attempt 2" in api.get(f"/v1/jobs/{free['id']}/logs").text
            nodes = {n["name"]: n["state"] for n in api.get("/v1/nodes").json()["items"]}
            assert nodes[victim] == "down"
    finally:
        stack.stop()
