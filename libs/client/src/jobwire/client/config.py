"""Where the gateway is and which token to send: flag, then environment, then the token file.

The token file is read only when no one but its owner can read it (mode 0600 or 0400), the rule ssh
applies to private keys: a token others could read is treated as leaked, not used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "JOBWIRE_URL"
TOKEN_ENV = "JOBWIRE_TOKEN"  # noqa: S105 (the variable's name, not a secret)


def resolve_url(flag: str | None, env: Mapping[str, str] = os.environ) -> str:
    return (flag or env.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def token_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/jobwire/token``, which is ``~/.config/jobwire/token`` by default."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "jobwire" / "token"


def resolve_token(
    flag: str | None,
    env: Mapping[str, str] = os.environ,
    *,
    path: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> str | None:
    """The bearer token to send, or None. ``warn`` hears why a token file was skipped (never its content)."""
    if flag:
        return flag.strip()
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV].strip()
    path = path or token_path(env)
    try:
        info = path.stat()
    except OSError:
        return None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        if warn:
            warn(f"ignoring {path}: its mode is {stat.S_IMODE(info.st_mode):04o}; run `chmod 600 {path}`")
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        if warn:
            warn(f"ignoring {path}: {exc.strerror or exc}")
        return None
    return token or None
