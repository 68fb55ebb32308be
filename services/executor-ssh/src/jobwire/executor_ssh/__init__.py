"""jobwire executor for SSH GPU nodes."""
