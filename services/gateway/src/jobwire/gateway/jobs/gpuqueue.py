"""The GPU job queue's multipart submit, accepted as its users send it:

    curl -H "Authorization: Bearer $TOKEN" -F code=@my_script.py -F config_file=@config.yaml .../v1/jobs

The config's ``expected_time`` (or an ``expected_time`` form field) becomes ``expected_runtime``;
``competition_id``, ``project_id`` and ``user_id`` become labels; the job gets one GPU unless it says
otherwise, as it did there. A ``token`` key in the file is never a credential here (only the
``Authorization`` header is): it is dropped and the answer says so in a ``Warning`` header, as it does
for any other key jobwire does not use.
"""

from __future__ import annotations

from typing import Any

from ..problems import InvalidBody

CONFIG_FIELD = "config_file"
TIME_FIELD = "expected_time"
LABEL_KEYS = ("competition_id", "project_id", "user_id")
#: GPUs a job of the queue gets when nothing says otherwise
DEFAULT_GPUS = 1


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
