"""The cluster's program catalog from ``JOBWIRE_HPC_PROGRAMS_*``: configured entries and discovery."""

from __future__ import annotations

import posixpath
from functools import partial

from jobwire.execution.catalog import Catalog, load_programs, scan
from jobwire.execution.transport import Transport

from .settings import HpcSettings


def catalog_of(hpc: HpcSettings, transport: Transport, cluster: str) -> Catalog | None:
    """None when neither a programs file nor a programs root is configured (jobs naming a program
    are then refused: this cluster offers none)."""
    if not hpc.programs_file and not hpc.programs_root:
        return None
    configured = load_programs(hpc.programs_file) if hpc.programs_file else []
    scanner = partial(scan, transport, hpc.programs_root) if hpc.programs_root else None
    if hpc.programs_root and not posixpath.isabs(hpc.programs_root):
        raise ValueError(f"JOBWIRE_HPC_PROGRAMS_ROOT={hpc.programs_root!r} must be an absolute path")
    if hpc.programs_interval <= 0:
        raise ValueError("JOBWIRE_HPC_PROGRAMS_INTERVAL must be a positive number of seconds")
    return Catalog(cluster, configured=configured, scanner=scanner, interval=hpc.programs_interval)
