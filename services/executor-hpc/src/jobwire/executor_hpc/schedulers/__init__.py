"""Batch system adapters (``jobwire.hpc_schedulers`` entry points): SLURM, SGE, PBS/Torque."""
