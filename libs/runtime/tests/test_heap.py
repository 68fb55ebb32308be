"""The start-up heap kept out of the collector's walks, and given back when the service stops."""

from __future__ import annotations

import gc
import weakref

import pytest

from jobwire.runtime.heap import freeze_startup_heap, thaw_heap

pytestmark = pytest.mark.unit


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_frozen_objects_are_not_walked_and_later_cycles_are_still_collected() -> None:
    try:
        before = _Node()
        alive = weakref.ref(before)
        frozen = freeze_startup_heap()
        assert frozen > 1000  # this process's modules, classes and functions
        del before
        gc.collect()
        assert alive() is not None  # frozen: a full collection did not walk it
        later = _Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None  # made after the freeze: collected as usual
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None  # given back: the stopped service's cycles are freed
