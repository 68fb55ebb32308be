"""jobwire.execution: the executor side, written once for every backend.

``Executor`` is what a backend implements; ``ExecutorService`` is the shared loop (consume work,
report, heart-beat, pump logs, enforce timeouts, upload artifacts, re-adopt after a restart).
"""

from .executor import (
    STREAMS,
    Executor,
    Existing,
    HoldRefused,
    OutputFile,
    RunHandle,
    RunKey,
    RunStatus,
    StartDeferred,
    StartRefused,
    load_executor,
)
from .service import ExecutorService
from .settings import ExecutorSettings, default_node_name, executor_settings

__all__ = [
    "STREAMS",
    "Executor",
    "ExecutorService",
    "ExecutorSettings",
    "Existing",
    "HoldRefused",
    "OutputFile",
    "RunHandle",
    "RunKey",
    "RunStatus",
    "StartDeferred",
    "StartRefused",
    "default_node_name",
    "executor_settings",
    "load_executor",
]
