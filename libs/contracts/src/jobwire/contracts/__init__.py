"""jobwire.contracts: the wire vocabulary shared by every service (pure data, no IO).

Import the current version as ``from jobwire.contracts import v1``.
"""
