"""Opening one SSH connection through a chain of jump hosts, with host keys checked.

Blocking paramiko code: callers run it in a worker thread. Host keys are verified against a
known_hosts file; an unknown key is refused unless the host opts into trust-on-first-use, which is
logged and records the key, and a changed key is always refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from .base import TransportError

log = logging.getLogger(__name__)
# paramiko logs every failed handshake of its transport thread as an ERROR traceback (and every
# connect and login at INFO): against a host that is away, one a try. The failure reaches us as an
# exception, logged once per change of state by the caller; paramiko's own lines are kept for CRITICAL.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class HostKeyError(TransportError):
    """The host's key is unknown or changed: the host is refused until known_hosts is fixed."""


@dataclass(frozen=True)
class SshHost:
    """Where and how to log in. Keys only: a key file (``key``) and/or the ssh-agent (``agent``)."""

    host: str
    port: int = 22
    user: str | None = None
    key: str | None = None
    agent: bool = False
    known_hosts: str = "~/.ssh/known_hosts"
    #: accept and record the key of a host never seen before (logged); a changed key is still refused
    trust_on_first_use: bool = False

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def known_hosts_path(self) -> str:
        return os.path.expanduser(self.known_hosts)


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Records an unknown key in known_hosts, loudly. Only used when a host opts in."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        log.warning(
            "trusting the unknown %s host key of %s on first use (fingerprint %s), recorded in %s",
            key.get_name(),
            hostname,
            key.fingerprint,
            self.path,
        )
        client.get_host_keys().add(hostname, key.get_name(), key)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _client(hop: SshHost) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    path = hop.known_hosts_path()
    if os.path.exists(path):
        client.load_host_keys(path)
    elif not hop.trust_on_first_use:
        raise HostKeyError(f"{hop.label}: the known_hosts file {path} does not exist; refusing the host")
    policy: paramiko.MissingHostKeyPolicy = (
        _TrustOnFirstUse(path) if hop.trust_on_first_use else paramiko.RejectPolicy()
    )
    client.set_missing_host_key_policy(policy)
    return client


def _login(client: paramiko.SSHClient, hop: SshHost, sock: paramiko.Channel | None, timeout: float) -> None:
    if not hop.key and not hop.agent:
        raise TransportError(f"{hop.label}: no key file and no ssh-agent configured")
    try:
        client.connect(
            hop.host,
            port=hop.port,
            username=hop.user,
            key_filename=os.path.expanduser(hop.key) if hop.key else None,
            allow_agent=hop.agent,
            look_for_keys=False,
            sock=sock,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
        )
    except paramiko.BadHostKeyException as e:
        raise HostKeyError(
            f"{hop.label}: the host key CHANGED (offered {e.key.get_name()} {e.key.fingerprint}, "
            f"{hop.known_hosts_path()} expects {e.expected_key.fingerprint}); refusing the host — "
            "if the host was really reinstalled, replace its line in known_hosts"
        ) from None
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            raise HostKeyError(
                f"{hop.label}: its host key is not in {hop.known_hosts_path()}; refusing the host "
                "(add it with ssh-keyscan after checking the fingerprint, or opt into trust_on_first_use)"
            ) from None
        raise TransportError(f"{hop.label}: {e}") from e
    except (OSError, EOFError) as e:
        raise TransportError(f"{hop.label}: cannot connect: {e}") from e


def open_chain(
    target: SshHost, jumps: Sequence[SshHost], *, timeout: float, keepalive: float
) -> list[paramiko.SSHClient]:
    """Log in to each jump host in turn and then to ``target`` over ``direct-tcpip`` channels.

    Returns every client, the target last; close them in reverse order.
    """
    chain: list[paramiko.SSHClient] = []
    try:
        for hop in [*jumps, target]:
            sock: paramiko.Channel | None = None
            if chain:
                previous = chain[-1].get_transport()
                assert previous is not None
                try:
                    sock = previous.open_channel(
                        "direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0), timeout=timeout
                    )
                except (paramiko.SSHException, OSError, EOFError) as e:
                    raise TransportError(
                        f"{hop.label}: the jump host {chain_label(jumps)} cannot reach it: {e}"
                    ) from e
            client = _client(hop)
            _login(client, hop, sock, timeout)
            transport = client.get_transport()
            assert transport is not None
            transport.set_keepalive(max(1, round(keepalive)))
            chain.append(client)
    except BaseException:
        close_chain(chain)
        raise
    return chain


def close_chain(chain: list[paramiko.SSHClient]) -> None:
    for client in reversed(chain):
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException, socket.error):
            client.close()
    chain.clear()


def chain_label(jumps: Sequence[SshHost]) -> str:
    return ",".join(j.label for j in jumps) or "(none)"
