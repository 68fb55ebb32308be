"""docs/migrating.md runs: every ``sh`` block of each section, in order, against a real stack (a local
executor offering one GPU), with ``JOBWIRE_URL`` and ``AUTH`` set. The page cannot drift from jobwire."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import yaml

from jobwire.contracts import v1
from jobwire.stack.stack import ExecutorConfig, Stack
from tests.e2e.conftest import make_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"


def sections() -> dict[str, list[str]]:
    """``## title`` -> its ``sh`` blocks, in order."""
    found: dict[str, list[str]] = {}
    for part in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        blocks = re.findall(r"^```sh\n(.*?)^```", body, flags=re.M | re.S)
        if blocks:
            found[title.strip()] = blocks
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("migrating-stack"),
        [
            ExecutorConfig(
                node="mig-gpu",
                slots=2,
                # hpc-queue-api's example names an absolute workdir (its study directory, under the
                # tests' temporary root): a node runs one only below a root its operator allows
                env={
                    "JOBWIRE_EXECUTOR_GPUS": "1",
                    "JOBWIRE_EXECUTOR_WORKDIR_ROOTS": str(tmp_path_factory.getbasetemp()),
                },
            )
        ],
        owner="migrating-user",  # one person's stack (its jobs run as the stack's account: issue 12)
    )
    s.start()
    yield s
    s.stop()


def test_the_document_has_runnable_examples() -> None:
    """Each system jobwire replaces has a section with at least one example that runs."""
    assert set(sections()) >= {
        "The GPU job queue",
        "The OPEVA backend",
        "hpc-queue-api",
        "The ASTRA SLURM fork",
    }


def test_shown_only_blocks_say_why() -> None:
    """A ``bash`` block is not run: the paragraph before it must say so (``not run here: ...``)."""
    text = DOC.read_text()
    for m in re.finditer(r"^```bash\n", text, flags=re.M):
        before = text[: m.start()].rstrip().rsplit("\n\n", 1)[-1]
        assert "not run here" in " ".join(before.lower().split()), (
            f"a shown-only block lacks its reason:\n{before}"
        )


@pytest.mark.parametrize("title", sorted(sections()))
def test_section_examples_run(title: str, stack: Stack, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.api_url, headers=stack.auth_headers) as admin:
        r = admin.post("/v1/tokens", json={"owner": "migrating-user"})
        assert r.status_code == 201, r.text
    env = {
        **os.environ,
        "JOBWIRE_URL": stack.api_url,
        "AUTH": f"Authorization: Bearer {r.json()['secret']}",
    }
    for n, block in enumerate(sections()[title], 1):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (
            f"{title}, block {n}:\n{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


def test_shown_only_specs_are_valid_job_specs() -> None:
    """The YAML specs in shown-only blocks cannot run here, but they must still be jobs jobwire accepts."""
    specs = [
        spec
        for block in re.findall(r"^```bash\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)
        for spec in re.findall(r"<<'YAML'\n(.*?)^YAML$", block, flags=re.M | re.S)
    ]
    assert len(specs) >= 3
    for text in specs:
        spec = v1.convert_strict(yaml.safe_load(text), v1.JobSpec)  # refuses unknown fields, as submit does
        if spec.backend_options:
            assert any(_fits(spec.backend_options, kind) for kind in OPTIONS), spec.backend_options


OPTIONS = (v1.DockerOptions, v1.SlurmOptions, v1.SgeOptions, v1.TorqueOptions)


def _fits(options: dict[str, object], kind: type) -> bool:
    try:
        v1.convert_strict(options, kind)
    except (msgspec.ValidationError, v1.UnknownField):
        return False
    return True
