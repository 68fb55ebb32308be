"""Headless Chromium from Debian's package, driven by Playwright (never ``playwright install``).

The browser is a backend like PostgreSQL: ``scripts/ci/install-backends.sh browser`` installs it, and a
test that needs it fails (not skips) when it is missing, so a green run always means the pages ran.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = os.environ.get("JOBWIRE_CHROMIUM", "/usr/bin/chromium")
#: flags that work in containers and on CI machines without a GPU, a sandbox or the Internet
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: where screenshots go (git-ignored); CI keeps them as artifacts
SHOTS = Path(os.environ.get("JOBWIRE_SCREENSHOTS", "build/screenshots"))


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `bash scripts/ci/install-backends.sh browser`")
    profile = tempfile.mkdtemp(prefix="jobwire-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1360, "height": 860},
                accept_downloads=True,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
