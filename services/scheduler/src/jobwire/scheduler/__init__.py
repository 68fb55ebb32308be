"""jobwire.scheduler: places jobs on nodes by least queued time and tracks every job's state."""

__version__ = "0.1.0"
