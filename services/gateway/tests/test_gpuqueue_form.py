"""The GPU job queue's multipart submit (``-F code=@my_script.py -F config_file=@config.yaml``) accepted as
its users send it, with only an Authorization header added; a ``token`` in the config is never used."""

from __future__ import annotations

import pytest

from jobwire.contracts import v1
from tests.support.nodes import store_node

pytestmark = pytest.mark.integration

CONFIG = b"""\
expected_time: 900
competition_id: 17
project_id: vision
user_id: u-42
token: old-queue-secret-123
learning_rate: 0.001
"""


@pytest.fixture
async def gpu_node(sessions) -> None:  # type: ignore[no-untyped-def]
    await store_node(sessions, "gpu-1", "ssh", v1.NodeCapacity(slots=2, gpus=2))


async def test_code_and_config_file_become_a_one_gpu_job_with_labels(gateway, gpu_node, caplog) -> None:
    files = {
        "code": ("my_script.py", b"print('hello from the queue')\n", "text/x-python"),
        "config_file": ("config.yaml", CONFIG, "application/x-yaml"),
    }
    r = await gateway.post("/v1/jobs", files=files)
    assert r.status_code in (201, 202), r.text
    job = r.json()
    assert job["code"]["filename"] == "my_script.py"
    assert job["expected_runtime"] == 900
    assert job["labels"] == {"competition_id": "17", "project_id": "vision", "user_id": "u-42"}
    assert job["resources"]["gpus"] == 1
    warning = r.headers["warning"]
    assert warning.startswith('299 jobwire "') and "`token` was ignored" in warning
    assert "learning_rate" in warning
    assert "old-queue-secret-123" not in r.text + warning
    assert "old-queue-secret-123" not in caplog.text


async def test_expected_time_field_and_an_explicit_gpu_count(gateway, gpu_node) -> None:
    files = {
        "code": ("train.py", b"print(1)\n", "text/x-python"),
        "expected_time": (None, b"600"),
        "spec": ("job.yaml", b"resources: {gpus: 2}\n", "application/x-yaml"),
    }
    r = await gateway.post("/v1/jobs", files=files)
    assert r.status_code in (201, 202), r.text
    job = r.json()
    assert job["expected_runtime"] == 600 and job["resources"]["gpus"] == 2
    assert "warning" not in r.headers


async def test_a_config_that_is_not_a_mapping_is_a_422(gateway, gpu_node) -> None:
    files = {
        "code": ("train.py", b"print(1)\n", "text/x-python"),
        "config_file": ("config.yaml", b"- a\n- b\n", "application/x-yaml"),
    }
    r = await gateway.post("/v1/jobs", files=files)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "`config_file` must be a mapping" in r.json()["detail"]


async def test_the_config_file_is_placed_in_the_jobs_directory_without_its_token(gateway, gpu_node) -> None:
    """As the queue did: the job finds ``config.yaml`` beside its script. It is stored as an input named
    by its content (the token dropped), so re-sending the same config stores nothing new."""
    files = {
        "code": ("my_script.py", b"print(open('config.yaml').read())\n", "text/x-python"),
        "config_file": ("config.yaml", CONFIG, "application/x-yaml"),
    }
    r = await gateway.post("/v1/jobs", files=files)
    assert r.status_code in (201, 202), r.text
    (placed,) = r.json()["inputs"]
    assert placed["path"] == "config.yaml" and placed["name"].startswith("gpu-queue/")
    stored = await gateway.get(f"/v1/inputs/{placed['name']}")
    assert stored.status_code == 200, stored.text
    assert b"old-queue-secret-123" not in stored.content and b"token" not in stored.content
    assert b"learning_rate: 0.001" in stored.content and b"competition_id: 17" in stored.content
    again = await gateway.post("/v1/jobs", files=files)
    assert again.json()["inputs"] == [placed]

    plain = b"expected_time: 60\nbatch_size: 8\n"
    r = await gateway.post(
        "/v1/jobs", files={"code": ("run.py", b"pass\n"), "config_file": ("../../etc/cfg.yml", plain)}
    )
    assert r.status_code in (201, 202), r.text
    (placed,) = r.json()["inputs"]
    assert placed["path"] == "cfg.yml"  # its own name only, never a path out of the job's directory
    assert (await gateway.get(f"/v1/inputs/{placed['name']}")).content == plain  # unchanged, byte for byte
