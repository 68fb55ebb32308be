"""jobwire.client: a typed Python client for the jobwire REST API, and the ``jobwire`` CLI."""

from .api import JobwireClient
from .errors import ApiError, ConnectionFailed, JobwireError, UnexpectedResponse, WaitTimeout
from .models import BatchSubmission, JobPage, LogEvent, Submission, exit_status, job_finished

__all__ = [
    "ApiError",
    "BatchSubmission",
    "ConnectionFailed",
    "JobPage",
    "JobwireClient",
    "JobwireError",
    "LogEvent",
    "Submission",
    "UnexpectedResponse",
    "WaitTimeout",
    "exit_status",
    "job_finished",
]
