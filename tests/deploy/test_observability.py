"""deploy/observability against a real Prometheus (Debian's, as installed by install-backends.sh
``prometheus``): the alert rules pass promtool, and the shipped scrape config, pointed at a real stack
(gateway with a ``metrics:read`` token, scheduler and executor on their metrics ports), yields jobwire series
in Prometheus's query API after a job ran, and a node that stops heart-beating makes ``JobwireNodeDown``
pending. The Grafana dashboard asks only for series jobwire exports."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest
import yaml

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.stack.processes import free_port
from jobwire.stack.stack import ExecutorConfig, Stack
from tests.e2e.conftest import make_stack, submit, wait_for, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.backend("prometheus"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
SOURCES = [
    ROOT / "libs/runtime/src/jobwire/runtime/metrics.py",
    ROOT / "services/gateway/src/jobwire/gateway/metrics/controllers.py",
]


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"no {name}: run `bash scripts/ci/install-backends.sh prometheus`")
    return found


def test_alert_rules_pass_promtool() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(OBS / "alerts.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def _names(text: str) -> set[str]:
    """jobwire series names an expression uses, without the histogram/counter suffixes."""
    found = set(re.findall(r"\bjobwire_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in found}


def test_dashboard_and_alerts_ask_only_for_series_jobwire_defines() -> None:
    defined = set()
    for src in SOURCES:
        defined |= set(re.findall(r'"(jobwire_[a-z_]+)"', src.read_text()))
    dashboard = json.loads((OBS / "grafana/dashboards/jobwire.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    assert len(dashboard["panels"]) >= 10
    used = _names(exprs) | _names((OBS / "alerts.yml").read_text())
    assert used and used <= defined, sorted(used - defined)


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"scheduler": free_port(), "executor": free_port(), "prometheus": free_port()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("obs-stack"),
        [ExecutorConfig(node="obs-local", slots=2, env={"JOBWIRE_METRICS_PORT": str(ports["executor"])})],
        env={"JOBWIRE_METRICS_PORT": str(ports["scheduler"]), "JOBWIRE_METRICS_ADDR": "127.0.0.1"},
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def prometheus(
    stack: Stack, ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Debian's Prometheus running the shipped config, its targets swapped for this stack's."""
    home = tmp_path_factory.mktemp("prometheus")
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers) as admin:
        r = admin.post("/v1/tokens", json={"owner": "prometheus", "scopes": ["metrics:read"]})
        assert r.status_code == 201, r.text
    (home / "metrics.token").write_text(r.json()["secret"])
    shutil.copy(OBS / "alerts.yml", home / "alerts.yml")
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(home / "alerts.yml")]
    api_host = stack.api_url.removeprefix("http://")
    targets = {
        "jobwire-gateway": [api_host],
        "jobwire-scheduler": [f"127.0.0.1:{ports['scheduler']}"],
        "jobwire-executor": [f"127.0.0.1:{ports['executor']}"],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(home / "metrics.token")
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{ports['prometheus']}"
    log = (home / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _ready(url), 30, what="prometheus to be ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _query(url: str, expr: str) -> list[dict]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["result"])


def test_prometheus_scrapes_every_service_and_sees_the_job(stack: Stack, prometheus: str) -> None:
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers, timeout=30) as api:
        job = submit(api, command=["sh", "-c", "echo observed"])
        wait_state(api, job["id"], "succeeded")

    def seen() -> list[dict] | None:
        found = _query(prometheus, 'jobwire_jobs{state="succeeded",backend="local"} >= 1')
        return found or None

    wait_for(seen, 30, every=0.5, what="jobwire_jobs in Prometheus")
    # each service is scraped on its own schedule: the scheduler's or executor's series may come a
    # scrape after the gateway's
    for expr in (
        "jobwire_submit_to_running_seconds_count >= 1",
        'jobwire_log_bytes_total{stream="stdout"} >= 9',
        'jobwire_node_up{node="obs-local"} == 1',
    ):
        wait_for(lambda expr=expr: _query(prometheus, expr) or None, 30, every=0.5, what=expr)
    up = {r["metric"]["job"]: r["value"][1] for r in _query(prometheus, 'up{job=~"jobwire-.*"}')}
    assert up == {"jobwire-gateway": "1", "jobwire-scheduler": "1", "jobwire-executor": "1"}
    time.sleep(1.5)  # one evaluation
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 5 and all(r["health"] == "ok" for r in rules), rules
    firing = {r["name"] for r in rules if r["state"] == "firing"}
    assert not firing, firing


def test_a_node_that_stops_heart_beating_raises_the_node_down_alert(stack: Stack, prometheus: str) -> None:
    """The alert rule is held to what jobwire really exports: a node that beat, then went silent, is
    ``jobwire_node_up == 0`` at the next scrape and ``JobwireNodeDown`` goes pending for it (it fires after
    its ``for: 2m``); the nodes still beating raise nothing."""
    node = "obs-vanishing"

    async def beat_then_stop() -> None:
        nc = await nats.connect(stack.nats_url)
        try:
            for _ in range(6):  # three seconds of heartbeats, then silence
                beat = v1.NodeHeartbeat(
                    node=node,
                    backend="ssh",
                    capacity=v1.NodeCapacity(slots=1, cpus=1),
                    at=datetime.now(UTC),
                    instance="obs-test",
                    interval=0.5,
                )
                await nc.publish(sj.heartbeat_subject(node), v1.encode(beat))
                await asyncio.sleep(0.5)
        finally:
            await nc.close()

    asyncio.run(beat_then_stop())
    wait_for(
        lambda: _query(prometheus, f'jobwire_node_up{{node="{node}"}} == 0') or None,
        60,
        every=0.5,
        what=f"{node} down in Prometheus",
    )

    def down_alerts() -> list[dict] | None:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        found = [a for a in alerts if a["labels"]["alertname"] == "JobwireNodeDown"]
        return found or None

    alerts = wait_for(down_alerts, 30, every=0.5, what="JobwireNodeDown pending")
    assert [(a["labels"]["node"], a["labels"]["backend"]) for a in alerts] == [(node, "ssh")]
    assert alerts[0]["state"] in ("pending", "firing")
