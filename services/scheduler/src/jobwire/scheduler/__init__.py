"""jobwire.scheduler."""
