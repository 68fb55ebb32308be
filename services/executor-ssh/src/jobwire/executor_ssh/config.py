"""The nodes file: which SSH hosts to run jobs on, how to reach them, and what they offer.

YAML (or JSON)::

    defaults:                       # merged into every node and jump host
      user: jobwire
      key: ~/.ssh/jobwire_ed25519   # or agent: true; never a password
      known_hosts: ~/.ssh/known_hosts
    hosts:                          # jump hosts, by name
      bastion: {host: bastion.lab.example, port: 22}
    nodes:
      gpu01:
        host: 10.0.0.11
        jump: [bastion]             # ProxyJump chain: names above or "user@host:port"
        gpus: all                   # all, a count (the first N), or a list of indexes
        slots: 4                    # CPU-only jobs at once, plus one per GPU (default: one per
                                    # GPU on a GPU node, else the node's CPU count)
        labels: {gpu: a100}
        address: 10.1.0.11          # where a gang's other ranks reach this node (default: host)

Unknown fields are errors (a typo must not silently change behaviour), and so is any password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml  # type: ignore[import-untyped]

from jobwire.contracts.v1 import subjects as sj
from jobwire.execution.transport.ssh import SshHost

#: what the executor reads from the environment: the nodes file
CONFIG_ENV = "JOBWIRE_SSH_CONFIG"
SECRET_WORDS = re.compile(r"pass(word|phrase)?|secret", re.IGNORECASE)
JUMP_SPEC = re.compile(r"^(?:(?P<user>[^@]+)@)?(?P<host>[^:@]+)(?::(?P<port>\d+))?$")


class ConfigError(ValueError):
    """The nodes file is wrong; the message names the place."""


class Login(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to log in to one host (jump host or node)."""

    host: str
    port: int = 22
    user: str | None = None
    key: str | None = None
    agent: bool = False
    known_hosts: str = "~/.ssh/known_hosts"
    #: accept a host key never seen before, record it, and log a warning (a changed key is refused)
    trust_on_first_use: bool = False

    def ssh_host(self) -> SshHost:
        return SshHost(
            host=self.host,
            port=self.port,
            user=self.user,
            key=self.key,
            agent=self.agent,
            known_hosts=self.known_hosts,
            trust_on_first_use=self.trust_on_first_use,
        )


class NodeConfig(Login, kw_only=True, forbid_unknown_fields=True):
    name: str = ""
    jump: list[str | Login] = []
    gpus: int | list[int] | Literal["all"] = "all"
    #: CPU-only jobs at once; GPU jobs take GPU slots on top (default: one slot per GPU on a GPU
    #: node, else the node's CPU count)
    slots: int | None = None
    cpus: float | None = None
    memory: int | str | None = None
    labels: dict[str, str] = {}
    pool: str | None = None
    #: where attempt directories live on the node (``~`` is the login user's home)
    root: str = "~/.jobwire"
    #: where the other ranks of a gang job reach this node (its rank 0 listens there for them):
    #: the node's address on the network its peers share; default ``host``
    address: str | None = None
    nvidia_smi: str = "nvidia-smi"
    #: failed probes in a row before the node is reported down
    down_after: int = 3
    probe_timeout: float = 10.0
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    keepalive: float = 15.0
    #: concurrent SSH channels, SFTP included (sshd's MaxSessions is 10 by default; closing
    #: channels still count there for a moment, so leave room)
    max_channels: int = 6
    #: longest wait between reconnect tries
    reconnect_max: float = 30.0

    def jumps(self, hosts: Mapping[str, Login]) -> list[SshHost]:
        out: list[SshHost] = []
        for hop in self.jump:
            if isinstance(hop, Login):
                out.append(hop.ssh_host())
            elif hop in hosts:
                out.append(hosts[hop].ssh_host())
            else:
                m = JUMP_SPEC.match(hop)
                if not m:
                    raise ConfigError(
                        f"nodes.{self.name}.jump: {hop!r} is neither a host name nor user@host:port"
                    )
                out.append(
                    SshHost(
                        host=m["host"],
                        port=int(m["port"] or 22),
                        user=m["user"] or self.user,
                        key=self.key,
                        agent=self.agent,
                        known_hosts=self.known_hosts,
                        trust_on_first_use=self.trust_on_first_use,
                    )
                )
        return out


class NodesFile(msgspec.Struct, kw_only=True):
    nodes: dict[str, NodeConfig]
    hosts: dict[str, Login] = {}


LOGIN_FIELDS = set(Login.__struct_fields__)


def _no_secrets(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and SECRET_WORDS.search(k):
                raise ConfigError(
                    f"{where}.{k}: passwords do not belong in the nodes file; "
                    "use a key file readable only by the executor, or an ssh-agent (agent: true)"
                )
            _no_secrets(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_secrets(v, f"{where}[{i}]")


def parse(raw: Any, source: str = "nodes file") -> NodesFile:
    """Check and merge a loaded nodes file (``defaults`` into every node and host)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'nodes'")
    _no_secrets(raw, source)
    unknown = set(raw) - {"defaults", "hosts", "nodes"}
    if unknown:
        raise ConfigError(f"{source}: unknown sections {sorted(unknown)} (known: defaults, hosts, nodes)")
    defaults = dict(raw.get("defaults") or {})
    login_defaults = {k: v for k, v in defaults.items() if k in LOGIN_FIELDS and k not in ("host", "port")}
    try:
        hosts = {
            name: msgspec.convert({**login_defaults, **(h or {})}, Login)
            for name, h in (raw.get("hosts") or {}).items()
        }
        nodes: dict[str, NodeConfig] = {}
        for name, n in (raw.get("nodes") or {}).items():
            sj.check_token(str(name), "node")
            nodes[name] = msgspec.convert({**defaults, **(n or {}), "name": name}, NodeConfig)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    if not nodes:
        raise ConfigError(f"{source}: no nodes")
    for n in nodes.values():
        n.jumps(hosts)  # every jump resolves
        if not n.key and not n.agent:
            raise ConfigError(
                f"{source}: nodes.{n.name}: give a key file (key:) or use the agent (agent: true)"
            )
    return NodesFile(nodes=nodes, hosts=hosts)


def load(path: str | os.PathLike[str]) -> NodesFile:
    text = Path(path).read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not YAML or JSON: {e}") from None
    return parse(raw, str(path))


def config_path(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    path = env.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"set {CONFIG_ENV} to the nodes file (or pass --config)")
    return path
