"""The detached process runner shared by the local and SSH executors."""

from .command import NO_CATALOG, plan
from .executor import ProcessExecutor, began_at
from .layout import WRAPPER_SCRIPT, AttemptDir

__all__ = ["NO_CATALOG", "WRAPPER_SCRIPT", "AttemptDir", "ProcessExecutor", "began_at", "plan"]
