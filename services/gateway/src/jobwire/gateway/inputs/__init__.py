"""``/v1/inputs``: named config files and datasets that jobs list in ``inputs``."""
