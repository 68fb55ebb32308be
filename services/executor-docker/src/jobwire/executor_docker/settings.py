"""Docker-specific settings, read from ``JOBWIRE_DOCKER_*`` (the common ones are ``JOBWIRE_EXECUTOR_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jobwire.runtime.settings import from_env

ENV_PREFIX = "JOBWIRE_DOCKER_"


@dataclasses.dataclass(kw_only=True)
class DockerSettings:
    """How to reach one Docker host and where its jobs keep their files."""

    #: ``unix:///var/run/docker.sock``, ``tcp://host:2376``, ``ssh://user@host``; default: DOCKER_HOST
    url: str | None = None
    #: client TLS for ``tcp://`` (paths); verification is on whenever a CA is given
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: the shared (NFS) directory, at the same path on the executor and on every Docker host
    shared_root: str = "/opt/jobwire/shared"
    #: host directories jobs may bind-mount (symlinks resolved); default: the shared root
    allowed_roots: list[str] = dataclasses.field(default_factory=list)
    #: host name put in a job's published ports; default: the URL's host, else this machine's name
    advertise_host: str | None = None
    #: GPU device ids this host offers (overrides detection); ``JOBWIRE_EXECUTOR_GPUS`` gives a count
    gpu_ids: list[str] = dataclasses.field(default_factory=list)
    #: image for jobs that name none
    default_image: str | None = None
    #: keep a failed job's container (for ``docker inspect``/``docker logs``) instead of removing it
    keep_failed: bool = False
    #: a container may run as root (uid 0: ``docker.user`` root, a mapped account that is root); off,
    #: such a job is refused. The image's own user is used when run-as is ``self`` and none is asked
    allow_root: bool = False
    #: run docker-init as PID 1, so TERM reaches the job and zombies are reaped
    init: bool = True
    #: seconds for one Docker API call (pulls get ten times as long)
    api_timeout: float = 60.0
    #: seconds a finished container's logs may take to drain before its end is reported anyway
    log_drain_timeout: float = 30.0
    #: how the ranks of a gang job reach each other: ``host`` runs each rank on its host's network
    #: (every port of every rank reachable at the node's address, as NCCL and Gloo need), ``publish``
    #: keeps the container's network and publishes rank 0's MASTER_PORT on the host (the rendezvous
    #: only; for engines that refuse host networking)
    gang_network: str = "host"


def docker_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> DockerSettings:
    return from_env(DockerSettings, ENV_PREFIX, environ, **overrides)
