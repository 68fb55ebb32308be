"""The dashboard at /ui in a real headless Chromium against the real stack (nats-server, scheduler, a local
executor offering 2 GPUs, gateway as processes): sign in, submit through the form, watch the job go
running -> succeeded without reloading, follow its logs, cancel another, be refused another owner's job,
see the nodes with their GPUs. A screenshot of each page is written under build/screenshots/.

One node is simulated (its heartbeats come from this test, named ``sim-gpu``): no executor here has real
GPUs with an inventory, and the page must show which job holds which GPU.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.stack.stack import ExecutorConfig, Stack
from tests.e2e.conftest import make_stack, submit, wait_state
from tests.support.browser import SHOTS, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.backend("browser"), pytest.mark.slow]

TIMEOUT = 30_000  # ms: a job's life on two busy cores


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("ui-stack"),
        # the dashboard's user is alice: the node runs her jobs as the stack's account, and no one
        # else's (issue 12; bob's and the admin's jobs here need not run)
        [
            ExecutorConfig(
                node="ui-local",
                slots=3,
                env={"JOBWIRE_EXECUTOR_GPUS": "2", "JOBWIRE_EXECUTOR_OWNER": "alice"},
            )
        ],
    )
    s.start()
    yield s
    s.stop()


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
        sim = page.locator("[data-node=sim-gpu]")
        expect(sim.locator(".gpus li")).to_have_count(2, timeout=TIMEOUT)
        expect(sim.locator(".gpus li[data-index='0']")).to_contain_text("NVIDIA A100")
        expect(sim.locator(".gpus li[data-index='0'] a")).to_have_attribute("href", f"#/jobs/{holder}")
        expect(sim.locator(".gpus li[data-index='1']")).to_contain_text("free")
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
