"""Drive executors through the bus as the scheduler would, and read what they report."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jobwire.runtime.bus import Bus
from tests.support.harness import Harness, eventually

__all__ = ["Harness", "eventually"]


@pytest.fixture
async def harness(clean_bus: Bus, nats_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(clean_bus, nats_url, tmp_path)
    yield h
    for svc in h.services:
        await svc.stop()


@pytest.fixture
def until() -> Callable[..., Any]:
    return eventually
