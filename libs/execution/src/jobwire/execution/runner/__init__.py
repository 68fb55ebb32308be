"""The detached process runner shared by the local and SSH executors."""

from ..attempt.layout import WRAPPER_SCRIPT, AttemptDir
from .command import NO_CATALOG, plan
from .executor import ProcessExecutor, Wrapped, began_at, prepare_wrapped

__all__ = [
    "NO_CATALOG",
    "WRAPPER_SCRIPT",
    "AttemptDir",
    "ProcessExecutor",
    "Wrapped",
    "began_at",
    "plan",
    "prepare_wrapped",
]
