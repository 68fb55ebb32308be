"""jobwire.executor_docker: jobs as containers on Docker hosts, job directories on shared storage.

Registered as the ``docker`` executor: ``jobwire-executor --backend docker``.
"""

from .executor import DockerExecutor
from .settings import DockerSettings, docker_settings

__all__ = ["DockerExecutor", "DockerSettings", "docker_settings"]
