"""jobwire.execution."""
