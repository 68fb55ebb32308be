"""A RunJob turned into the arguments of one ``containers.create`` call (no IO here)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from docker.types import DeviceRequest

from jobwire.contracts.v1 import RunJob
from jobwire.contracts.v1.spec import DockerOptions, port_key
from jobwire.execution import StartRefused
from jobwire.execution.attempt import AttemptDir, FileToWrite, job_environment, rank_of
from jobwire.execution.runner import NO_CATALOG

from . import layout as L
from .mounts import Bind

#: how a gang's ranks reach each other (``DockerSettings.gang_network``)
GANG_NETWORKS = ("host", "publish")

#: How code files run when the spec names no interpreter (inside the image).
INTERPRETERS: dict[str, list[str]] = {".py": ["python3"], ".sh": ["/bin/sh"]}


@dataclass
class Plan:
    """Everything ``start`` needs: the create kwargs, and the job's files (:func:`job_files`)."""

    image: str
    create: dict[str, Any]
    files: list[FileToWrite] = field(default_factory=list)


def _argv(run: RunJob, d: AttemptDir) -> tuple[list[str] | None, list[str], list[FileToWrite]]:
    """(entrypoint override, command, files); a plain ``command`` keeps the image's entrypoint."""
    spec = run.spec
    if spec.command is not None:
        return None, [*spec.command, *spec.args], []
    if spec.script is not None:
        f = FileToWrite(posixpath.join(d.path, "script"), spec.script.encode(), 0o755)
        argv = [L.inside("script")] if spec.script.startswith("#!") else ["/bin/sh", L.inside("script")]
        return argv[:1], [*argv[1:], *spec.args], [f]
    if spec.code is not None:
        code = spec.code
        ext = posixpath.splitext(code.filename)[1].lower()
        interpreter = code.interpreter or INTERPRETERS.get(ext)
        if not interpreter:
            raise StartRefused(
                f"cannot tell how to run {code.filename!r}: give code.interpreter "
                f"(files ending in {', '.join(sorted(INTERPRETERS))} run without one)"
            )
        f = FileToWrite(posixpath.join(d.work, code.filename), code.content.encode())
        argv = [*interpreter, L.inside("work", code.filename), *spec.args]
        return argv[:1], argv[1:], [f]
    if spec.program is not None:
        raise StartRefused(NO_CATALOG)
    raise StartRefused("the job names nothing to run")


def job_files(run: RunJob, d: AttemptDir) -> list[FileToWrite]:
    """The files the job's own command needs in its directory (its script, its code file), written
    with the rest of the attempt before the directory is given to the job's account."""
    return _argv(run, d)[2]


def ports_of(opts: DockerOptions) -> dict[str, Any]:
    """``{"8888/tcp": None}`` (any free host port), ``1234`` or ``("127.0.0.1", 1234)``."""
    out: dict[str, Any] = {}
    for p in opts.ports:
        key = port_key(p)
        host = p.get("host") if isinstance(p, dict) else None
        host_ip = p.get("host_ip") if isinstance(p, dict) else None
        out[key] = (host_ip, host) if host_ip else host
    return out


def device_requests(gpu_ids: list[str]) -> list[DeviceRequest]:
    """Explicit ids, so two jobs on one host never share a GPU (``count`` would give both GPU 0)."""
    if not gpu_ids:
        return []
    return [DeviceRequest(driver="", device_ids=list(gpu_ids), capabilities=[["gpu"]])]


def plan(
    run: RunJob,
    d: AttemptDir,
    *,
    node: str,
    image: str | None,
    binds: list[Bind],
    gpu_ids: list[str],
    init: bool,
    gang_network: str = "host",
) -> Plan:
    """The container for one attempt; raises StartRefused for what this node can never run."""
    spec = run.spec
    if not image:
        raise StartRefused("a Docker job needs an image (set 'image', or a default image on the node)")
    opts = spec.docker or DockerOptions()
    entrypoint, command, files = _argv(run, d)
    if spec.workdir is None:
        workdir = L.inside("work") if entrypoint is not None else None
    elif spec.workdir.startswith("/"):
        workdir = spec.workdir
    else:
        workdir = L.inside("work", spec.workdir)
    # paths as the container sees them: the attempt directory is mounted at /jobwire
    env = job_environment(run, d.at(L.IN_CONTAINER))
    # the job's directory only: the executor's files and the logs are apart from it, never mounted
    volumes = [f"{d.path}:{L.IN_CONTAINER}:rw", *(b.spec() for b in binds)]
    labels = {
        L.LABEL_JOB: run.job_id,
        L.LABEL_ATTEMPT: str(run.attempt),
        L.LABEL_NODE: node,
        L.LABEL_GPUS: ",".join(gpu_ids),
        L.LABEL_RANK: str(rank_of(run)),
    }
    memory = spec.resources.memory_bytes
    create: dict[str, Any] = {
        "name": L.container_name(run.job_id, run.attempt, rank_of(run)),
        "command": command,
        "environment": env,
        "labels": labels,
        "volumes": volumes,
        "init": init,
        "detach": True,
        "nano_cpus": int(spec.resources.cpus * 1e9),
    }
    if entrypoint is not None:
        create["entrypoint"] = entrypoint
    if workdir is not None:
        create["working_dir"] = workdir
    if memory is not None:
        # No swap on top, so a job past its limit is OOM-killed instead of crawling.
        create["mem_limit"] = memory
        create["memswap_limit"] = memory
    if opts.shm_size is not None:
        create["shm_size"] = int(opts.shm_size)
    if opts.network is not None:
        create["network"] = opts.network
    if opts.user is not None:
        create["user"] = opts.user
    if opts.ports:
        create["ports"] = ports_of(opts)
    if gpu_ids:
        create["device_requests"] = device_requests(gpu_ids)
    if run.gang is not None:
        gang_networking(run, opts, create, gang_network)
    return Plan(image, create, files)


def gang_networking(run: RunJob, opts: DockerOptions, create: dict[str, Any], mode: str) -> None:
    """How one rank of a gang reaches the others. ``host``: on the host's network, so rank 0 listens
    at MASTER_ADDR (its node's address) and every rank's ports are reachable, as collective libraries
    need. ``publish``: its own network; rank 0's MASTER_PORT is published at the same port on the host
    (rank 0 must then listen on every address: MASTER_ADDR is the host's, not the container's)."""
    gang = run.gang
    assert gang is not None
    if mode == "host":
        if opts.network not in (None, "host"):
            raise StartRefused(
                f"docker.network {opts.network!r}: the ranks of a gang run on the host's network on this "
                "node (JOBWIRE_DOCKER_GANG_NETWORK=host); leave docker.network out"
            )
        create.pop("network", None)
        create.pop("ports", None)  # every port of the container is the host's already
        create["network_mode"] = "host"
        return
    if gang.rank == 0:
        key = f"{gang.master_port}/tcp"
        ports = dict(create.get("ports") or {})
        if key in ports and ports[key] not in (None, gang.master_port):
            raise StartRefused(f"docker.ports publishes {key} elsewhere; it is the gang's MASTER_PORT")
        ports[key] = gang.master_port
        create["ports"] = ports
