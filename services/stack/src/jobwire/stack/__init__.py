"""jobwire.stack: the embedded all-in-one stack."""
