"""An attempt's files, environment and layout: owned here once, used by every backend."""

from .env import DEFAULT_ENV_ALLOW, inherit_words, inherited, job_environment, jobwire_env
from .files import PROGRESS_MAX, AttemptFiles, FileToWrite, rank_of
from .layout import WRAPPER_SCRIPT, AttemptDir, attempt_name

__all__ = [
    "DEFAULT_ENV_ALLOW",
    "PROGRESS_MAX",
    "WRAPPER_SCRIPT",
    "AttemptDir",
    "AttemptFiles",
    "FileToWrite",
    "attempt_name",
    "inherit_words",
    "inherited",
    "job_environment",
    "jobwire_env",
    "rank_of",
]
