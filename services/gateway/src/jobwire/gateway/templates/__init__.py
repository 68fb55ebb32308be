"""``/v1/templates``: named partial JobSpecs, and submitting from one."""
