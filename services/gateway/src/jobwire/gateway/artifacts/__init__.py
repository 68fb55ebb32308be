"""Job artifacts from the object store."""
