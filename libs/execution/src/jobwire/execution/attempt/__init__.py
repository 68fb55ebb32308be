"""An attempt's files, environment and layout: owned here once, used by every backend."""

from .env import DEFAULT_ENV_ALLOW, inherit_words, inherited, job_environment, jobwire_env
from .files import PROGRESS_MAX, AttemptFiles, FileToWrite, rank_of
from .layout import APART, FLAT, WRAPPER_SCRIPT, AttemptDir, Layout, attempt_name

__all__ = [
    "APART",
    "DEFAULT_ENV_ALLOW",
    "FLAT",
    "PROGRESS_MAX",
    "WRAPPER_SCRIPT",
    "AttemptDir",
    "AttemptFiles",
    "FileToWrite",
    "Layout",
    "attempt_name",
    "inherit_words",
    "inherited",
    "job_environment",
    "jobwire_env",
    "rank_of",
]
