"""``/v1/arrays``: an array's counts and tasks, and cancel, hold and release of a whole array."""
