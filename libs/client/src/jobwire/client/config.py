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
#: the dashboard as users reach it (behind a proxy, another host); ``off`` prints no link after a submit
DASHBOARD_ENV = "JOBWIRE_DASHBOARD_URL"
_NO_DASHBOARD = ("", "off", "none", "0")


def resolve_url(flag: str | None, env: Mapping[str, str] = os.environ) -> str:
    return (flag or env.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def dashboard_url(api_url: str, env: Mapping[str, str] = os.environ) -> str | None:
    """The dashboard's address: ``JOBWIRE_DASHBOARD_URL``, else the gateway's own ``/ui``; None when
    that variable says ``off`` (a gateway whose address users' browsers cannot reach)."""
    given = env.get(DASHBOARD_ENV)
    if given is None:
        return f"{api_url.rstrip('/')}/ui"
    if given.strip().lower() in _NO_DASHBOARD:
        return None
    return given.strip().rstrip("/")


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
