"""docs/migrating.md runs: every ``sh`` block of each section, in order, against a real stack (a local
executor offering one GPU), with ``JOBWIRE_URL`` and ``AUTH`` set. The page cannot drift from jobwire."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
        [ExecutorConfig(node="mig-gpu", slots=2, env={"JOBWIRE_EXECUTOR_GPUS": "1"})],
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
