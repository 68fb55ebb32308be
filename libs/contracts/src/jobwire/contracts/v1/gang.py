"""The rendezvous port of a gang's rank 0, one rule for every backend: the scheduler draws it for the
ranks it dispatches (Docker, SSH, local nodes) and executor-hpc for a SLURM gang it launches itself
inside one batch job, so a gang meets at the same kind of port wherever it runs."""

from __future__ import annotations

import zlib

#: rendezvous ports are drawn from here (above torch's 29500 default, below Linux's ephemeral range)
PORT_BASE = 29500
PORT_SPAN = 2000


def master_port(job_id: str, attempt: int) -> int:
    """Rank 0's rendezvous port: fixed by job and attempt, so a replayed dispatch says the same, and
    a retried gang does not meet a port its previous attempt may still hold."""
    return PORT_BASE + zlib.crc32(f"{job_id}:{attempt}".encode()) % PORT_SPAN
