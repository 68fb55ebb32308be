"""The dashboard at /ui in a real headless Chromium against the real stack (nats-server, scheduler, a local
executor offering 2 GPUs, gateway as processes): sign in, submit through the form, watch the job go
running -> succeeded without reloading, follow its logs, cancel another, be refused another owner's job,
see the nodes with their GPUs. A screenshot of each page is written under build/screenshots/.

One node is simulated (its heartbeats come from this test, named ``sim-gpu``): no executor here has real
GPUs with an inventory, and the page must show which job holds which GPU.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.stack.stack import ExecutorConfig, Stack
from jobwire.store import make_engine, session_factory
from tests.e2e.conftest import make_stack, submit, wait_state
from tests.support.browser import SHOTS, chromium
from tests.support.nodes import store_node

ACTIVE = ("queued", "held", "starting", "running")

pytestmark = [pytest.mark.e2e, pytest.mark.backend("browser"), pytest.mark.slow]

TIMEOUT = 30_000  # ms: a job's life on two busy cores
# every expect() waits as long as a page action may (its own default is 5 s: a job's run on a loaded
# machine outlasts that)
expect.set_options(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("ui-stack"),
        # the dashboard's user is alice: the node runs her jobs as the stack's account, and no one
        # else's (issue 12); bob's and the admin's jobs here need not run: they wait for ui-anyone
        [
            ExecutorConfig(
                node="ui-local",
                slots=3,
                env={"JOBWIRE_EXECUTOR_GPUS": "2", "JOBWIRE_EXECUTOR_OWNER": "alice"},
            )
        ],
    )
    s.start()
    asyncio.run(_store_a_down_node_for_every_owner(s.config.db_url()))
    yield s
    s.stop()


async def _store_a_down_node_for_every_owner(database_url: str) -> None:
    """A node row as the scheduler keeps one that registered once and went down: the jobs of owners
    ui-local does not serve are accepted and wait for it (a job no node serves is a 422). Stored, not
    heart-beaten: a node up even for a moment could take alice's jobs away from ui-local."""
    engine = make_engine(database_url)
    try:
        capacity = v1.NodeCapacity(slots=1, cpus=1)
        await store_node(session_factory(engine), "ui-anyone", "ssh", capacity, state="down")
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as client:
        yield client


def user_token(admin: httpx.Client, owner: str) -> str:
    r = admin.post("/v1/tokens", json={"owner": owner})
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


@pytest.fixture(scope="module")
def alice(admin: httpx.Client) -> str:
    return user_token(admin, "alice")


@pytest.fixture(scope="module")
def as_alice(stack: Stack, alice: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {alice}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[BrowserContext]:
    """Started after the stack: Playwright's sync API holds an event loop in this thread while it runs."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext, stack: Stack) -> Iterator[Page]:
    p = browser.new_page()
    p.set_default_timeout(TIMEOUT)
    external: list[str] = []
    p.on("request", lambda r: None if r.url.startswith(stack.api_url) else external.append(r.url))
    yield p
    p.close()
    assert not [u for u in external if not u.startswith(("blob:", "data:"))], external


def sign_in(page: Page, stack: Stack, token: str) -> None:
    page.goto(f"{stack.api_url}/ui")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")
    expect(page.locator("#whoami")).to_be_visible()


def shot(page: Page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_sign_in_refuses_a_bad_token_and_keeps_a_good_one_out_of_cookies(
    page: Page, stack: Stack, alice: str
) -> None:
    page.goto(f"{stack.api_url}/ui")
    shot(page, "signin")
    page.fill("#token", "jw_not-a-real-token")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin [role=alert]")).to_contain_text("not valid")
    sign_in(page, stack, alice)
    expect(page.locator("#whoami")).to_have_text("alice")
    assert page.context.cookies() == []
    assert page.evaluate("sessionStorage.getItem('jobwire.token')") == alice


def test_submit_from_the_form_then_watch_it_run_and_succeed_live_with_its_logs(
    page: Page, stack: Stack, alice: str
) -> None:
    sign_in(page, stack, alice)
    page.click("text=Submit")
    page.fill("#f-name", "ui-hello")
    script = (
        'for i in 1 2 3 4; do echo "step $i of 4"; '
        'echo "{\\"current\\": $i, \\"total\\": 4}" > "$JOBWIRE_PROGRESS_FILE"; sleep 1; done; echo all done'
    )
    page.fill("#f-command", f"sh -c '{script}'")
    page.fill("#f-labels", "project=ui-test")
    page.fill("#f-env", "GREETING=hello there")
    page.click("#f-submit")
    # The job page opens on the new job; no reload from here on.
    expect(page.locator("#job-id")).to_have_text(
        __import__("re").compile(r"^[0-9a-f-]{36}$"), timeout=TIMEOUT
    )
    page.evaluate("window.__same_document = true")
    expect(page.locator("#summary .badge[data-state=running]")).to_be_visible()
    expect(page.locator("#log-output")).to_contain_text("step 2 of 4")
    expect(page.locator("#files")).to_contain_text("progress")  # the job's directory while it runs
    shot(page, "job-running")
    expect(page.locator("#summary .badge[data-state=succeeded]")).to_be_visible()
    expect(page.locator("#log-output")).to_contain_text("all done")
    expect(page.locator("#progress [role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#timeline")).to_contain_text("succeeded")
    assert page.evaluate("window.__same_document") is True  # live, not reloaded
    page.fill("#log-search", "step 3")
    expect(page.locator("#log-output mark")).to_have_count(1)
    expect(page.locator("#log-status")).to_contain_text("1 of 5 lines match")
    shot(page, "job")
    page.fill("#log-search", "")
    with page.expect_download() as dl:
        page.click("#log-download")
    text = Path(dl.value.path()).read_text()
    assert "step 1 of 4" in text and "all done" in text
    spec = page.locator("#spec").inner_text()
    assert '"GREETING": "hello there"' in spec and '"project": "ui-test"' in spec


def test_jobs_list_shows_new_jobs_and_their_states_without_reload(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    sign_in(page, stack, alice)
    expect(page.locator("#live")).to_have_text("live")
    before = len(as_alice.get("/v1/jobs", params={"state": "succeeded"}).json()["items"])
    expect(page.locator(".bar[data-state=succeeded]")).to_have_attribute("data-count", str(before))
    page.evaluate("window.__same_document = true")
    job = submit(as_alice, command=["sh", "-c", "sleep 3"], name="ui-live-list")
    row = page.locator(f"tr[data-id='{job['id']}']")
    expect(row).to_be_visible()
    expect(row.locator(".badge[data-state=running]")).to_be_visible()
    expect(row.locator(".badge[data-state=succeeded]")).to_be_visible()
    expect(page.locator(".bar[data-state=succeeded]")).to_have_attribute("data-count", str(before + 1))
    assert page.evaluate("window.__same_document") is True
    shot(page, "jobs")
    # A filter by state narrows the table to that state; keyset paging walks on.
    page.click(".bar[data-state=succeeded]")
    expect(page.locator("#job-rows tr .badge[data-state=succeeded]").first).to_be_visible()
    assert page.locator("#job-rows tr .badge:not([data-state=succeeded])").count() == 0


def test_cancel_a_running_job_from_its_page(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    job = submit(as_alice, command=["sleep", "60"], name="ui-to-cancel")
    wait_state(as_alice, job["id"], "running")
    sign_in(page, stack, alice)
    page.goto(f"{stack.api_url}/ui#/jobs/{job['id']}")
    expect(page.locator("#summary .badge[data-state=running]")).to_be_visible()
    page.click("#do-cancel")
    expect(page.locator("#summary .badge[data-state=cancelled]")).to_be_visible()
    expect(page.locator("#do-cancel")).to_have_count(0)
    assert as_alice.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"


def test_a_retried_job_is_resubmitted_from_its_page_without_its_attempts(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client, tmp_path: Path
) -> None:
    """Its attempts and other fields the system added are not sent back as the new spec (the gateway
    refuses unknown fields with a 422), nor shown in the spec pane."""
    marker = tmp_path / "tried"
    script = f"[ -e {marker} ] || {{ touch {marker}; exit 4; }}; echo second try"
    job = submit(as_alice, command=["sh", "-c", script], name="ui-retried", retry={"attempts": 2})
    done = wait_state(as_alice, job["id"], "succeeded")
    assert [a["exit_code"] for a in done["attempts"]] == [4, 0]
    sign_in(page, stack, alice)
    page.goto(f"{stack.api_url}/ui#/jobs/{job['id']}")
    expect(page.locator("#summary .badge[data-state=succeeded]")).to_be_visible()
    spec = page.locator("#spec").inner_text()
    assert '"retry"' in spec and '"attempts": [' not in spec and "not_before" not in spec
    page.click("#resubmit")
    expect(page.locator("#f-submit")).to_be_visible()
    page.click("#f-submit")
    expect(page.locator("#job-id")).not_to_have_text(job["id"], timeout=TIMEOUT)
    expect(page.locator("#job-id")).to_have_text(__import__("re").compile(r"^[0-9a-f-]{36}$"))
    again = page.locator("#job-id").inner_text()
    assert as_alice.get(f"/v1/jobs/{again}").json()["retry"]["attempts"] == 2


def test_a_queued_job_shows_its_place_and_estimated_start_and_resubmits(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    """With the node's 3 slots taken by 60 s jobs (half a CPU each: the node has this machine's 2), a
    fourth waits: its page shows its queue position and
    when it should start (issue 14), and its spec resubmits without the fields the system added."""
    busy = [
        submit(
            as_alice,
            command=["sleep", "60"],
            name=f"ui-busy-{i}",
            expected_runtime=60,
            node="ui-local",
            resources={"cpus": 0.5},
        )
        for i in range(3)
    ]
    half = {"cpus": 0.5}
    waiting = submit(as_alice, command=["true"], name="ui-waits", node="ui-local", resources=half)
    try:
        for job in busy:
            wait_state(as_alice, job["id"], "running")
        got = as_alice.get(f"/v1/jobs/{waiting['id']}").json()
        assert got["state"] == "queued" and got["queue_position"] == 0 and got["estimated_start"]
        sign_in(page, stack, alice)
        page.goto(f"{stack.api_url}/ui#/jobs/{waiting['id']}")
        summary = page.locator("#summary")
        expect(summary).to_contain_text("Queue position")
        expect(summary).to_contain_text("Estimated start")
        shot(page, "queued-job")
        assert "estimated_start" not in page.locator("#spec").inner_text()
        page.click("#resubmit")
        expect(page.locator("#f-submit")).to_be_visible()
        page.click("#f-submit")
        expect(page.locator("#job-id")).not_to_have_text(waiting["id"], timeout=TIMEOUT)
        again = page.locator("#job-id").inner_text()
        assert as_alice.get(f"/v1/jobs/{again}").json()["name"] == "ui-waits"
        as_alice.post(f"/v1/jobs/{again}/cancel")
    finally:
        for job in [*busy, waiting]:
            as_alice.post(f"/v1/jobs/{job['id']}/cancel")


def test_another_owners_job_is_not_found_and_not_listed(
    page: Page, stack: Stack, admin: httpx.Client, alice: str
) -> None:
    bob = user_token(admin, "bob")
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {bob}"}) as as_bob:
        theirs = submit(as_bob, command=["true"], name="bobs-secret-job")
    sign_in(page, stack, alice)
    expect(page.locator("#job-rows tr").first).to_be_visible()
    assert page.locator(f"tr[data-id='{theirs['id']}']").count() == 0
    assert "bobs-secret-job" not in page.locator("#job-rows").inner_text()
    page.goto(f"{stack.api_url}/ui#/jobs/{theirs['id']}")
    expect(page.locator("[role=alert]")).to_contain_text("404")
    assert "bobs-secret-job" not in page.content()
    # Alice's token has no admin scope: no owner filter is offered either.
    page.goto(f"{stack.api_url}/ui#/jobs")
    expect(page.locator("#filters")).to_be_visible()
    assert page.locator("#filters input[name=owner]").count() == 0


def test_nodes_page_shows_gpus_and_the_job_holding_each(
    page: Page, stack: Stack, admin: httpx.Client, alice: str
) -> None:
    holder = submit(admin, command=["true"], name="holds-gpu-0")["id"]
    stop = threading.Event()
    beats = threading.Thread(target=_simulated_gpu_node, args=(stack.nats_url, holder, stop), daemon=True)
    beats.start()
    try:
        sign_in(page, stack, alice)
        page.click("text=Nodes")
        local = page.locator("[data-node=ui-local]")
        expect(local).to_contain_text("up")
        expect(local.locator(".gpu-cell")).to_contain_text("2")
        expect(local.locator(".served-owner")).to_have_text("alice only")  # its account is alice's alone
        sim = page.locator("[data-node=sim-gpu]")
        expect(sim.locator(".gpus li")).to_have_count(2, timeout=TIMEOUT)
        expect(sim.locator(".gpus li[data-index='0']")).to_contain_text("NVIDIA A100")
        expect(sim.locator(".gpus li[data-index='0'] a")).to_have_attribute("href", f"#/jobs/{holder}")
        expect(sim.locator(".gpus li[data-index='1']")).to_contain_text("free")
        expect(sim.locator(".served-owner")).to_have_count(0)  # a node for every owner says nothing
        expect(page.locator("#node-summary")).to_contain_text("GPUs")
        # an aborted request of a page left behind is not an error to show here
        expect(page.locator("main .error")).to_have_count(0)
        shot(page, "nodes")
    finally:
        stop.set()
        beats.join(5)
    page.click("text=Submit")
    expect(page.locator("#submit-form")).to_be_visible()
    shot(page, "submit")


def _simulated_gpu_node(nats_url: str, holder: str, stop: threading.Event) -> None:
    """Heart-beats as a 2-GPU node whose GPU 0 runs ``holder`` (what the SSH executor's nvidia-smi gives)."""

    async def run() -> None:
        import nats

        nc = await nats.connect(nats_url)
        try:
            while not stop.is_set():
                beat = v1.NodeHeartbeat(
                    node="sim-gpu",
                    backend="ssh",
                    capacity=v1.NodeCapacity(slots=2, cpus=16, gpus=2),
                    at=datetime.now(UTC),
                    instance="ui-test",
                    interval=0.5,
                    gpus=[
                        v1.GpuInfo(
                            index=0,
                            name="NVIDIA A100",
                            memory_total_mib=40960,
                            memory_used_mib=1200,
                            utilization_percent=87,
                            job_id=holder,
                        ),
                        v1.GpuInfo(index=1, name="NVIDIA A100", memory_total_mib=40960, memory_used_mib=0),
                    ],
                )
                await nc.publish(sj.heartbeat_subject("sim-gpu"), v1.encode(beat))
                await asyncio.sleep(0.5)
        finally:
            await nc.close()

    asyncio.run(run())


def wait_for(client: httpx.Client, path: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT / 1000 * 2
    while True:
        body: dict[str, Any] = client.get(path).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_a_jobs_attempts_show_exit_codes_and_each_attempts_own_logs(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "tried-once"
    script = f"[ -e {marker} ] || {{ touch {marker}; echo first-try; exit 5; }}; echo second-try"
    # on the real node: the nodes test's simulated node may still look up, and runs nothing
    job = submit(
        as_alice, command=["sh", "-c", script], name="ui-attempts", retry={"attempts": 2}, node="ui-local"
    )
    assert [a["exit_code"] for a in wait_state(as_alice, job["id"], "succeeded")["attempts"]] == [5, 0]
    sign_in(page, stack, alice)
    page.goto(f"{stack.api_url}/ui#/jobs/{job['id']}")
    rows = page.locator("#attempts tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".exit")).to_have_text("5")
    expect(rows.nth(0).locator(".badge")).to_have_attribute("data-state", "failed")
    expect(rows.nth(1).locator(".exit")).to_have_text("0")
    expect(page.locator("#log-output")).to_contain_text("second-try")
    page.click("#attempts [data-logs='1']")
    expect(page.locator("#log-output")).to_contain_text("first-try")
    expect(page.locator("#log-output")).not_to_contain_text("second-try")
    shot(page, "job-attempts")


def test_an_arrays_page_counts_its_tasks_as_bars_and_lists_them_as_jobs(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    r = as_alice.post(
        "/v1/jobs",
        json={
            "name": "ui-array",
            "command": ["sh", "-c", 'test "$JOBWIRE_ARRAY_INDEX" != 3'],
            "array": {"count": 5, "parallelism": 2},
            "node": "ui-local",
        },
    )
    assert r.status_code in (201, 202), r.text
    array_id = r.json()["id"]
    shown = wait_for(as_alice, f"/v1/arrays/{array_id}", lambda a: bool(a["done"]))
    assert {s: n for s, n in shown["counts"].items() if n} == {"succeeded": 4, "failed": 1}, shown
    sign_in(page, stack, alice)
    page.goto(f"{stack.api_url}/ui#/arrays/{array_id}")
    expect(page.locator("#array-counts .bar[data-state=succeeded]")).to_have_attribute("data-count", "4")
    expect(page.locator("#array-counts .bar[data-state=failed]")).to_have_attribute("data-count", "1")
    expect(page.locator("#task-rows tr")).to_have_count(5)
    expect(page.locator("#task-rows tr[data-index='3'] .badge")).to_have_attribute("data-state", "failed")
    shot(page, "array")
    page.click("#task-rows tr[data-index='3'] a")
    expect(page.locator("#array-link")).to_have_text("task 3 of the array")
    page.click("#array-link")
    page.click("#array-jobs")
    expect(page.locator("#job-rows tr")).to_have_count(5)
    expect(page.locator("#group-link")).to_be_visible()
    assert "array=" in page.url


def test_a_workflows_page_draws_its_levels_with_states_and_links(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    diamond = {
        "name": "ui-diamond",
        "jobs": [
            {"name": "a", "command": ["true"]},
            {"name": "b", "command": ["true"], "after": [{"job": "a"}]},
            {"name": "c", "command": ["false"], "after": [{"job": "a"}]},
            {"name": "d", "command": ["true"], "after": [{"job": "b"}, {"job": "c", "when": "finished"}]},
        ],
    }
    for spec in diamond["jobs"]:
        spec["node"] = "ui-local"
    r = as_alice.post("/v1/workflows", json=diamond)
    assert r.status_code in (201, 202), r.text
    wf, ids = r.json()["id"], r.json()["jobs"]
    wait_for(
        as_alice,
        f"/v1/workflows/{wf}",
        lambda w: len(w.get("jobs", [])) == 4 and all(j["state"] not in ACTIVE for j in w["jobs"]),
    )
    sign_in(page, stack, alice)
    page.goto(f"{stack.api_url}/ui#/workflows")
    page.click(f"#workflow-rows tr[data-id='{wf}'] a")
    levels = page.locator("#dag .dag-level")
    expect(levels).to_have_count(3)
    expect(levels.nth(0).locator(".dag-job")).to_have_count(1)
    expect(levels.nth(1).locator(".dag-job")).to_have_count(2)
    expect(levels.nth(2).locator(".dag-job[data-name=d]")).to_have_attribute("data-state", "succeeded")
    expect(page.locator(".dag-job[data-name=c]")).to_have_attribute("data-state", "failed")
    expect(page.locator(".dag-job[data-name=d] .dag-after")).to_have_text("after b, c (finished)")
    shot(page, "workflow")
    page.click("#workflow-jobs")
    expect(page.locator("#job-rows tr")).to_have_count(4)
    page.goto(f"{stack.api_url}/ui#/workflows/{wf}")
    page.click(".dag-job[data-name=c] a")
    expect(page.locator("#job-id")).to_have_text(ids["c"])


def test_hold_release_and_delete_buttons_act_as_the_tokens_scopes_allow(
    page: Page, stack: Stack, admin: httpx.Client, alice: str, as_alice: httpx.Client
) -> None:
    """A job waiting for another is held, released and deleted from its page; a token without
    ``jobs:cancel`` sees the same buttons disabled, saying why, and no re-submit without ``jobs:submit``."""
    first = submit(as_alice, command=["sleep", "60"], name="ui-first", node="ui-local")
    waiting = submit(as_alice, command=["true"], name="ui-waits-for-first", after=[{"job": first["id"]}])
    try:
        r = admin.post("/v1/tokens", json={"owner": "alice", "scopes": ["jobs:read"]})
        assert r.status_code == 201, r.text
        sign_in(page, stack, r.json()["secret"])
        page.goto(f"{stack.api_url}/ui#/jobs/{waiting['id']}")
        expect(page.locator("#summary .badge[data-state=queued]")).to_be_visible()
        for verb in ("hold", "delete"):
            expect(page.locator(f"#do-{verb}")).to_be_disabled()
            expect(page.locator(f"#do-{verb}")).to_have_attribute("title", re.compile("jobs:cancel"))
        expect(page.locator("#resubmit")).to_have_count(0)

        page.evaluate("sessionStorage.clear()")
        sign_in(page, stack, alice)
        page.goto(f"{stack.api_url}/ui#/jobs/{waiting['id']}")
        page.click("#do-hold")
        expect(page.locator("#summary .badge[data-state=held]")).to_be_visible()
        expect(page.locator("#do-hold")).to_have_count(0)
        assert as_alice.get(f"/v1/jobs/{waiting['id']}").json()["state"] == "held"
        page.click("#do-release")
        expect(page.locator("#summary .badge[data-state=queued]")).to_be_visible()
        expect(page.locator("#do-release")).to_have_count(0)
        assert as_alice.get(f"/v1/jobs/{waiting['id']}").json()["state"] == "queued"

        as_alice.post(f"/v1/jobs/{first['id']}/cancel")
        expect(page.locator("#summary .badge[data-state=cancelled]")).to_be_visible()  # its dependency failed
        page.click("#do-delete")
        page.wait_for_url(re.compile(r"#/jobs$"))
        expect(page.locator(f"tr[data-id='{waiting['id']}']")).to_have_count(0)
        assert as_alice.get(f"/v1/jobs/{waiting['id']}").status_code == 404
    finally:
        as_alice.post(f"/v1/jobs/{first['id']}/cancel")


def test_published_ports_are_links_and_programs_are_listed_per_cluster(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    """A node that publishes a running job's port: the job's page links it. Two clusters' program
    catalogs (as the HPC executors put them in the ``jobwire_programs`` bucket): the nodes page lists
    each cluster's programs under its name."""
    url = "http://127.0.0.1:18888/lab?token=abc"
    stop = threading.Event()

    def up(body: dict[str, Any]) -> bool:
        return any(n["name"] == "sim-ports" and n["state"] == "up" for n in body["items"])

    node = threading.Thread(target=_node_publishing_ports, args=(stack.nats_url, url, stop), daemon=True)
    node.start()
    try:
        assert up(wait_for(as_alice, "/v1/nodes", up))
        job = submit(as_alice, command=["jupyter", "lab"], name="ui-notebook", node="sim-ports")
        wait_state(as_alice, job["id"], "running")
        sign_in(page, stack, alice)
        page.goto(f"{stack.api_url}/ui#/jobs/{job['id']}")
        link = page.locator("#summary a", has_text="jupyter")
        expect(link).to_have_attribute("href", url)
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", "noopener")

        page.click("text=Nodes")
        catalog = page.locator("#catalog")
        expect(catalog.locator("h3")).to_have_text(["alpha", "beta"])
        alpha = catalog.locator("table").nth(0)
        expect(alpha).to_contain_text("NEWAVE@v28.16.4")
        expect(alpha).to_contain_text("hpc-a1")
        expect(alpha).to_contain_text("hydro-thermal dispatch")
        expect(catalog.locator("table").nth(1)).to_contain_text("DECOMP@v31")
        expect(catalog.locator("table").nth(1)).not_to_contain_text("NEWAVE")
        shot(page, "nodes-catalog")
    finally:
        stop.set()
        node.join(15)
        # gone before the next test: the scheduler would place that test's jobs on it while it looks up
        gone = wait_for(as_alice, "/v1/nodes", lambda body: not up(body))
        assert not up(gone), "sim-ports still up after it stopped heart-beating"


def _node_publishing_ports(nats_url: str, url: str, stop: threading.Event) -> None:
    """A node (``sim-ports``) that runs what it is sent, reporting it running with a ``jupyter`` port
    and ending it as succeeded when the test is done; it also publishes two clusters' catalogs."""

    async def run() -> None:
        from jobwire.contracts.v1 import codec
        from jobwire.contracts.v1 import programs as pv
        from jobwire.runtime.bus import connect
        from jobwire.runtime.settings import BusSettings
        from tests.support.fake_node import FakeNode

        bus = await connect(BusSettings(nats_url=nats_url), name="ui-sim-ports")
        kv = await bus.js.key_value(sj.PROGRAM_BUCKET)
        for name, cluster, ids in (
            ("hpc-a1", "alpha", ["NEWAVE@v28.16.4", "NEWAVE@v10"]),
            ("hpc-b1", "beta", ["DECOMP@v31"]),
        ):
            entries = [
                pv.ProgramEntry(
                    name=i.split("@")[0], version=i.split("@")[1], description="hydro-thermal dispatch"
                )
                for i in ids
            ]
            catalog = pv.ProgramCatalog(node=name, cluster=cluster, at=datetime.now(UTC), programs=entries)
            await kv.put(name, codec.encode(catalog))
        node = await FakeNode(bus, "sim-ports", slots=2).start()
        reported: set[str] = set()
        try:
            while not stop.is_set():
                for job_id in set(node.runs) - reported:
                    reported.add(job_id)
                    await node.report(job_id, "running", ports={"jupyter": url})
                await asyncio.sleep(0.2)
            for job_id in reported:
                await node.report(job_id, "finished", outcome=v1.JobState.SUCCEEDED, exit_code=0)
            for name in ("hpc-a1", "hpc-b1"):
                await kv.delete(name)
        finally:
            await node.stop()
            await bus.close()

    asyncio.run(run())


def test_an_uploaded_input_reaches_the_job_and_a_resubmit_carries_the_changes(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client, tmp_path: Path
) -> None:
    """The submit form's file upload lands in the job's working directory, and the file the job wrote
    is downloaded from its page as an artifact; "Re-submit with changes"
    starts from that job's spec, and what the user edits (here an env value) is what the new job gets,
    the uploaded input kept."""
    data = tmp_path / "data.txt"
    data.write_text("payload-42\n")
    sign_in(page, stack, alice)
    page.click("text=Submit")
    page.fill("#f-name", "ui-upload")
    page.fill(
        "#f-command",
        'sh -c \'cat data.txt; echo "who=$WHO"; echo "result of $WHO" > "$JOBWIRE_OUTPUT_DIR/result.txt"\'',
    )
    page.fill("#f-env", "WHO=first")
    page.set_input_files("#f-inputs", str(data))
    page.click("#f-submit")
    expect(page.locator("#job-id")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"), timeout=TIMEOUT)
    first = page.locator("#job-id").inner_text()
    expect(page.locator("#summary .badge[data-state=succeeded]")).to_be_visible()
    expect(page.locator("#log-output")).to_contain_text("payload-42")
    expect(page.locator("#log-output")).to_contain_text("who=first")
    # the job's output is an artifact on its page, downloaded as the file it wrote
    with page.expect_download() as dl:
        page.locator("#artifacts button", has_text="result.txt").click()
    assert Path(dl.value.path()).read_text() == "result of first\n"
    assert dl.value.suggested_filename == "result.txt"

    page.click("#resubmit")
    expect(page.locator("#f-env")).to_have_value("WHO=first")
    page.fill("#f-env", "WHO=second")
    page.click("#f-submit")
    expect(page.locator("#job-id")).not_to_have_text(first, timeout=TIMEOUT)
    expect(page.locator("#job-id")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
    again = page.locator("#job-id").inner_text()
    expect(page.locator("#summary .badge[data-state=succeeded]")).to_be_visible()
    expect(page.locator("#log-output")).to_contain_text("who=second")
    expect(page.locator("#log-output")).to_contain_text("payload-42")
    old, new = as_alice.get(f"/v1/jobs/{first}").json(), as_alice.get(f"/v1/jobs/{again}").json()
    assert new["env"] == {"WHO": "second"} and old["env"] == {"WHO": "first"}
    assert new["inputs"] == old["inputs"] and old["inputs"][0]["path"] == "data.txt"
    assert new["name"] == "ui-upload" and new["command"] == old["command"]


def test_a_filtered_list_takes_new_matching_jobs_live_and_only_those(
    page: Page, stack: Stack, alice: str, as_alice: httpx.Client
) -> None:
    """Filtered by label (from the form) or by name, the list still shows new jobs as they are
    submitted — the matching ones only — without a reload; the counts follow the filter."""
    sign_in(page, stack, alice)
    page.fill("#filters input[name=label]", "batch=ui-filter")
    page.click("#filters button[type=submit]")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#job-rows")).to_contain_text("No jobs match.")
    page.evaluate("window.__same_document = true")
    other = submit(as_alice, command=["true"], name="ui-unlabelled", labels={"batch": "other"})
    mine = submit(as_alice, command=["true"], name="ui-labelled", labels={"batch": "ui-filter"})
    row = page.locator(f"tr[data-id='{mine['id']}']")
    expect(row).to_be_visible()
    expect(row.locator(".badge[data-state=succeeded]")).to_be_visible()
    expect(page.locator(".bar[data-state=succeeded]")).to_have_attribute("data-count", "1")
    assert page.locator(f"tr[data-id='{other['id']}']").count() == 0
    assert page.evaluate("window.__same_document") is True

    page.goto(f"{stack.api_url}/ui#/jobs?name=ui-named-later")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#job-rows")).to_contain_text("No jobs match.")
    named = submit(as_alice, command=["true"], name="ui-named-later")
    submit(as_alice, command=["true"], name="ui-named-otherwise")
    expect(page.locator(f"tr[data-id='{named['id']}']")).to_be_visible()
    expect(page.locator("#job-rows tr")).to_have_count(1)
