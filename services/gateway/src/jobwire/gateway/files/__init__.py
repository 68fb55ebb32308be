"""A job's directory, listed and read through its node's executor while the job runs."""
