"""Connecting to one Docker engine, and what it offers (CPUs, memory, GPUs)."""

from __future__ import annotations

import glob
import logging
import os
import re
import socket
from typing import Any
from urllib.parse import urlparse

import docker
from docker.tls import TLSConfig

from .settings import DockerSettings

log = logging.getLogger(__name__)
#: Blocking log followers hold two connections per running container.
POOL_SIZE = 256


def engine_url(s: DockerSettings) -> str:
    return s.url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(s: DockerSettings) -> docker.DockerClient:
    url = engine_url(s)
    tls: TLSConfig | bool = False
    if s.tls_ca or s.tls_cert:
        cert = (s.tls_cert, s.tls_key) if s.tls_cert and s.tls_key else None
        tls = TLSConfig(client_cert=cert, ca_cert=s.tls_ca, verify=s.tls_ca or False)
    return docker.DockerClient(
        base_url=url,
        tls=tls,
        timeout=int(s.api_timeout),
        max_pool_size=POOL_SIZE,
        version="auto",
        use_ssh_client=url.startswith("ssh://"),
    )


def advertise_host(s: DockerSettings) -> str:
    """The name clients use to reach ports published on this engine's host."""
    if s.advertise_host:
        return s.advertise_host
    parsed = urlparse(engine_url(s))
    if parsed.scheme in ("tcp", "ssh", "http", "https") and parsed.hostname:
        return parsed.hostname
    return socket.gethostname()


def is_local(s: DockerSettings) -> bool:
    return urlparse(engine_url(s)).scheme in ("unix", "npipe", "")


def detect_gpu_ids(s: DockerSettings, info: dict[str, Any], count: int | None) -> list[str]:
    """Configured ids, else ``count`` ids, else the NVIDIA devices of a local engine with the runtime.

    The engine cannot list GPUs itself; a remote host's GPUs must be configured.
    """
    if s.gpu_ids:
        return list(s.gpu_ids)
    if count is not None:
        return [str(i) for i in range(count)]
    runtimes = info.get("Runtimes") or {}
    if "nvidia" not in runtimes:
        return []
    if not is_local(s):
        log.warning("the engine has the nvidia runtime; set JOBWIRE_DOCKER_GPU_IDS to offer its GPUs")
        return []
    found = sorted(
        int(m.group(1)) for p in glob.glob("/dev/nvidia*") if (m := re.fullmatch(r"/dev/nvidia(\d+)", p))
    )
    return [str(i) for i in found]
