"""``/v1/workflows``: jobs submitted together, referring to each other by name."""
