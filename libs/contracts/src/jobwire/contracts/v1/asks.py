"""What a job's backend options ask for, held against its ``resources``: one rule for gateway and executors.

Quotas and placement count only ``resources`` (GPUs, nodes, CPUs, memory). A backend option that asks a
batch system or an engine for more than that (``slurm.gres: gpu:8``, an ``#SBATCH --gres`` line in
``slurm.setup``, ``torque.nodes: 1:ppn=64:gpus=8``, ``docker.gpu_ids`` naming four devices) would run
work nobody counted, so it is refused when the spec is decoded. Options may refine what ``resources``
asks for (a GPU type, a smaller ``ppn``, which devices), never exceed it.

Every message starts with the field it refuses (``slurm.gres ...``): the gateway reads the JSON path
of its 422 from there. Pure functions: no IO.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import JobSpec, Resources

#: generic resources that hand a job (a share of) a GPU on Slurm: counted against ``resources.gpus``
SLURM_GPU_GRES = frozenset({"gpu"})
SLURM_GPU_SHARES = frozenset({"mps", "shard"})
_GRES_ENTRY = re.compile(r"^(?:gres/)?([A-Za-z][A-Za-z0-9_-]*)((?::[A-Za-z0-9_.-]+)*)$(?!\n)")
#: lines a batch system reads as its own directives, anywhere in a script it is given
_DIRECTIVE = re.compile(r"^\s*#\s*(SBATCH|PBS|BSUB|\$)", re.IGNORECASE)
_TORQUE_PART = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)((?::[A-Za-z0-9_.=-]+)*)$(?!\n)")
_TORQUE_KEYS = ("ppn", "gpus")


def check_backend_asks(spec: JobSpec) -> None:
    """Raise ValueError when a backend option asks for more than ``spec.resources`` (or hides directives)."""
    res = spec.resources
    if spec.slurm is not None:
        if spec.slurm.gres is not None:
            _check_gres(spec.slurm.gres, res)
        _check_setup("slurm.setup", spec.slurm.setup)
    if spec.sge is not None:
        _check_setup("sge.setup", spec.sge.setup)
    if spec.torque is not None:
        if spec.torque.nodes is not None:
            _check_torque_nodes(spec.torque.nodes, res)
        if spec.torque.ppn is not None and spec.torque.ppn > cpus_per_node(res):
            raise ValueError(
                f"torque.ppn {spec.torque.ppn} asks for more processors per node than resources "
                f"({cpus_per_node(res)}: resources.cpus, or resources.slots when larger); "
                "raise resources.cpus"
            )
        _check_setup("torque.setup", spec.torque.setup)
    if spec.docker is not None:
        _check_gpu_ids("docker.gpu_ids", spec.docker.gpu_ids, res)
        shm = spec.docker.shm_size
        if shm is not None and res.memory is not None and int(shm) > int(res.memory):
            raise ValueError(
                f"docker.shm_size ({int(shm)} bytes) is more than resources.memory "
                f"({int(res.memory)} bytes): shared memory counts against the job's memory"
            )
    if spec.ssh is not None:
        _check_gpu_ids("ssh.gpu_ids", [str(g) for g in spec.ssh.gpu_ids], res)


def cpus_per_node(res: Resources) -> int:
    """Processors per node the batch adapters ask for: ``max(slots, ceil(cpus))``."""
    return max(res.slots, math.ceil(res.cpus))


def gres_gpus(gres: str) -> tuple[int, bool]:
    """(GPUs per node, whether a GPU share such as ``mps`` or ``shard`` is asked) in a Slurm ``--gres``
    value like ``gpu:a100:2,mps:100``; ValueError when it cannot be read."""
    gpus, share = 0, False
    for entry in gres.split(","):
        m = _GRES_ENTRY.match(entry.strip())
        if m is None:
            raise ValueError(f"slurm.gres entry {entry!r} is not NAME[:TYPE][:COUNT]")
        name = m.group(1).lower()
        parts = [p for p in m.group(2).split(":") if p]
        count = 1
        if parts and parts[-1].isdigit():
            count = int(parts[-1])
        elif parts and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", parts[-1]):
            raise ValueError(f"slurm.gres entry {entry!r} has a count Slurm would read differently")
        if name in SLURM_GPU_GRES:
            gpus += count
        elif name in SLURM_GPU_SHARES and count > 0:
            share = True
    return gpus, share


def _check_gres(gres: str, res: Resources) -> None:
    gpus, share = gres_gpus(gres)
    if gpus > res.gpus:
        raise ValueError(
            f"slurm.gres {gres!r} asks for {gpus} GPU(s) per node but resources.gpus is {res.gpus}: "
            "ask for GPUs in resources.gpus (quotas and placement count only that); "
            "slurm.gres may name their type"
        )
    if share and res.gpus == 0:
        raise ValueError(
            f"slurm.gres {gres!r} asks for a share of a GPU but resources.gpus is 0: "
            "ask for the GPU in resources.gpus"
        )


def _check_setup(field: str, setup: str | None) -> None:
    if setup is None:
        return
    for line in setup.splitlines():
        m = _DIRECTIVE.match(line)
        if m is not None:
            raise ValueError(
                f"{field} may not carry batch-system directives ({line.strip()[:60]!r}): ask for "
                "resources in resources and the backend's options, which quotas and placement count"
            )


def torque_nodes_asks(nodes: str) -> tuple[int, int | None, int | None]:
    """(node count, largest ppn, largest gpus) of a Torque ``nodes`` value like ``2:ppn=8:gpus=1+n5``."""
    count, ppn, gpus = 0, None, None
    for part in nodes.split("+"):
        m = _TORQUE_PART.match(part)
        if m is None:
            raise ValueError(f"torque.nodes part {part!r} is not N[:property][:ppn=P][:gpus=G]")
        head = m.group(1)
        count += int(head) if head.isdigit() else 1  # a host name is one node
        for item in (p for p in m.group(2).split(":") if p):
            key, eq, value = item.partition("=")
            if not eq:
                continue  # a node property: refines, asks for nothing more
            if key not in _TORQUE_KEYS or not value.isdigit():
                raise ValueError(
                    f"torque.nodes {item!r}: only ppn=N and gpus=N may be given there "
                    "(other amounts belong in resources)"
                )
            if key == "ppn":
                ppn = max(ppn or 0, int(value))
            else:
                gpus = max(gpus or 0, int(value))
    return count, ppn, gpus


def _check_torque_nodes(nodes: str, res: Resources) -> None:
    count, ppn, gpus = torque_nodes_asks(nodes)
    if count > res.nodes:
        raise ValueError(
            f"torque.nodes {nodes!r} asks for {count} node(s) but resources.nodes is {res.nodes}"
        )
    if ppn is not None and ppn > cpus_per_node(res):
        raise ValueError(
            f"torque.nodes {nodes!r} asks for ppn={ppn} but resources allow {cpus_per_node(res)} "
            "per node: raise resources.cpus"
        )
    if gpus is not None and gpus > res.gpus:
        raise ValueError(
            f"torque.nodes {nodes!r} asks for gpus={gpus} per node but resources.gpus is {res.gpus}: "
            "ask for GPUs in resources.gpus"
        )


def _check_gpu_ids(field: str, ids: list[str], res: Resources) -> None:
    if len(set(ids)) != len(ids):
        raise ValueError(f"{field} names a GPU twice")
    if len(ids) > res.gpus:
        raise ValueError(
            f"{field} names {len(ids)} GPU(s) but resources.gpus is {res.gpus}: ask for them in "
            "resources.gpus (quotas and placement count only that)"
        )
