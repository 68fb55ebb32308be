"""Executor nodes as the scheduler last recorded them."""
