"""jobwire.runtime."""
