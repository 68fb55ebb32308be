"""jobwire executor for HPC batch schedulers: one adapter per scheduler, over a transport."""
