"""jobwire.client."""
