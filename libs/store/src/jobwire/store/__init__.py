"""jobwire.store."""
