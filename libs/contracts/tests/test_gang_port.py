"""The one rendezvous port rule of a gang's rank 0 (``contracts.v1.gang``), used by the scheduler for
the ranks it dispatches and by executor-hpc for a SLURM gang launched inside one batch job."""

from __future__ import annotations

import pytest

from jobwire.contracts.v1.gang import PORT_BASE, PORT_SPAN, master_port

pytestmark = pytest.mark.unit

JOB = "01a2b3c4-0000-7000-8000-0000000000c2"


def test_the_port_is_fixed_by_job_and_attempt_and_pinned() -> None:
    # a replayed dispatch (or a restarted scheduler, or the SLURM executor) computes the same port;
    # pinned so a change to the rule is seen here, not at a rendezvous that never meets
    assert master_port(JOB, 1) == master_port(JOB, 1) == 31004
    assert master_port(JOB, 2) == 29558  # a retried gang does not meet its previous attempt's port


def test_ports_stay_in_their_range_and_spread() -> None:
    ports = {master_port(f"job-{i}", a) for i in range(500) for a in (1, 2, 3)}
    assert all(PORT_BASE <= p < PORT_BASE + PORT_SPAN for p in ports)
    assert min(ports) >= 29500 and max(ports) < 31500  # above torch's default, below ephemeral ports
    assert len(ports) > 500  # 1,500 gangs do not pile onto a few ports
