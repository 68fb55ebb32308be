"""The GPU job queue's multipart submit, accepted as its users send it:

    curl -H "Authorization: Bearer $TOKEN" -F code=@my_script.py -F config_file=@config.yaml .../v1/jobs

The config's ``expected_time`` (or an ``expected_time`` form field) becomes ``expected_runtime``;
``competition_id``, ``project_id`` and ``user_id`` become labels; the job gets one GPU unless it says
otherwise, as it did there. A ``token`` key in the file is never a credential here (only the
``Authorization`` header is): it is dropped and the answer says so in a ``Warning`` header, as it does
for any other key jobwire does not use.

The config file itself is placed in the job's working directory under its own name, as the queue did
(scripts open ``config.yaml`` beside them): it is stored as one of the owner's inputs named by its
content (``gpu-queue/<sha256>/<file>``, so a later upload never changes what an earlier job reads) and
listed in the job's ``inputs``. A config holding a ``token`` is stored without that key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
import yaml  # type: ignore[import-untyped]

from ..problems import InvalidBody
from .form import CONFIG_FIELD, TIME_FIELD

__all__ = ["CONFIG_FIELD", "TIME_FIELD", "config_input", "translate"]
LABEL_KEYS = ("competition_id", "project_id", "user_id")
#: GPUs a job of the queue gets when nothing says otherwise
DEFAULT_GPUS = 1
#: where the config's stored copies live among the owner's inputs
INPUT_PREFIX = "gpu-queue"
DEFAULT_CONFIG_NAME = "config.yaml"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$(?!\n)")


def config_input(filename: str | None, raw: bytes, config: dict[str, Any]) -> tuple[str, str, bytes]:
    """``(input name, path in the job's directory, content)`` of the config file to place beside the
    job: its own name when that is a plain file name (else ``config.yaml``), its bytes unchanged unless
    it holds a ``token``, which is dropped (the file is then written out again, YAML or JSON as sent)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    path = base if _SAFE_NAME.fullmatch(base) else DEFAULT_CONFIG_NAME
    if "token" in config:
        kept = {k: v for k, v in config.items() if k != "token"}
        if path.lower().endswith(".json"):
            raw = msgspec.json.encode(kept)
        else:
            raw = yaml.safe_dump(kept, sort_keys=False).encode()
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return f"{INPUT_PREFIX}/{digest}/{path}", path, raw


def translate(config: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Fold the queue's config into ``spec`` (a JobSpec mapping being built); the warnings to send."""
    warnings: list[str] = []
    unused: list[str] = []
    for key, value in config.items():
        if key == TIME_FIELD:
            _put(spec, "expected_runtime", value)
        elif key in LABEL_KEYS:
            if value is not None:
                spec.setdefault("labels", {})[key] = str(value)
        elif key == "token":
            warnings.append(
                "the config's `token` was ignored: jobwire takes credentials only from the "
                "Authorization header (and never stores one it finds in a file)"
            )
        else:
            unused.append(str(key))
    if unused:
        warnings.append(f"config keys jobwire does not use were ignored: {', '.join(sorted(unused))}")
    resources = spec.setdefault("resources", {})
    if not isinstance(resources, dict):
        raise InvalidBody("`resources` must be a mapping", extra={"path": "$.resources"})
    resources.setdefault("gpus", DEFAULT_GPUS)
    return warnings


def _put(spec: dict[str, Any], key: str, value: Any) -> None:
    if key in spec and spec[key] != value:
        raise InvalidBody(f"`{key}` is given twice with different values", extra={"path": f"$.{key}"})
    spec[key] = value
