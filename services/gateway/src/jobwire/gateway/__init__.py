"""jobwire.gateway."""
