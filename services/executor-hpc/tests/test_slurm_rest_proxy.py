"""slurm-rest through a SOCKS5 proxy: OpenSSH's dynamic forwarding (``ssh -D``) to the test jump
host is the proxy, slurmrestd the real 22.05 one; stopping the proxy shows the requests used it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import pytest

from jobwire.execution.hpc import SchedulerError
from jobwire.execution.transport.local import LocalTransport
from jobwire.executor_hpc.schedulers.slurm_rest import SlurmRest
from tests.fixtures.ssh import SshCluster

pytestmark = [pytest.mark.integration, pytest.mark.backend("slurm"), pytest.mark.backend("ssh")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _socks_proxy(login: SshCluster, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``ssh -N -D``: a real SOCKS5 proxy whose tunnel ends at the jump host."""
    argv = [
        "ssh", "-v", "-N", "-D", f"127.0.0.1:{port}",
        "-i", str(login.client_key),
        "-o", f"UserKnownHostsFile={login.known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-p", str(login.jump_port),
        f"{login.user}@127.0.0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the SOCKS5 proxy did not listen: {log.read_text()}")


def test_rest_goes_through_the_socks5_proxy(login_node, slurm_cluster, tmp_path):
    token = tmp_path / "slurm.jwt"
    token.write_text(slurm_cluster.token())
    token.chmod(0o600)
    port = _free_port()
    log = tmp_path / "ssh-proxy.log"
    proxy = _socks_proxy(login_node, port, log)
    rest = SlurmRest(
        options={
            "url": slurm_cluster.rest_url,
            "user": "root",
            "token_file": str(token),
            "proxy": f"127.0.0.1:{port}",
        }
    )
    transport = LocalTransport()
    try:
        asyncio.run(rest.prepare(transport))  # the API version, detected through the proxy
        assert rest.version == "v0.0.38"
        assert asyncio.run(rest.list(transport, ["999999"])) == {}
        assert "dynamic" in log.read_text()  # ssh opened dynamic (SOCKS) channels for the requests
    finally:
        proxy.terminate()
        proxy.wait(10)
    with pytest.raises(SchedulerError, match="curl failed"):
        asyncio.run(rest.list(transport, ["999999"]))  # no proxy, no way through
    assert token.read_text().strip() not in log.read_text()
