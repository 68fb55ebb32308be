"""Jobs: submit, read, list, cancel, delete."""
