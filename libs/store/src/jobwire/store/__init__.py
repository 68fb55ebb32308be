"""jobwire.store: the database, shared by the scheduler (writes) and the gateway (reads)."""

from .engine import DEFAULT_SQLITE_URL, SQLITE_BEGIN, make_engine, migrate, session_factory
from .queries import InvalidCursor, get_job, list_jobs, list_nodes, row_to_job

__all__ = [
    "DEFAULT_SQLITE_URL",
    "SQLITE_BEGIN",
    "InvalidCursor",
    "get_job",
    "list_jobs",
    "list_nodes",
    "make_engine",
    "migrate",
    "row_to_job",
    "session_factory",
]
