"""Turning ``jobwire submit`` arguments into a ``JobSpec``.

The spec is checked here with the same strict rules the gateway applies, so a typo in a YAML file or
a bad ``--memory`` is reported with its field before anything is sent.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import yaml  # type: ignore[import-untyped, unused-ignore]

from jobwire.contracts import v1

SPEC_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
_SOURCES = ("command", "script", "program", "code")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}$(?!\n)")


class UsageError(Exception):
    """The user's input is wrong; the CLI prints it and exits 2, like argparse does."""


def is_spec_file(path: str) -> bool:
    return Path(path).suffix.lower() in SPEC_SUFFIXES


def load_spec_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping (JSON is YAML, but its errors read better from the JSON parser)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: a job spec is a mapping of fields, not {type(raw).__name__}")
    return raw


def code_of(path: Path, interpreter: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``code`` object for an uploaded file: its name and text (the executor writes it back)."""
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not a UTF-8 text file; only scripts can be uploaded as code") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    code: dict[str, Any] = {"filename": path.name, "content": content}
    if interpreter:
        code["interpreter"] = list(interpreter)
    return code


def parse_pairs(values: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``K=V`` pairs; with ``env``, a bare ``K`` takes its value from there (as ``docker run -e K`` does)."""
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"{what} {item!r} is not KEY=VALUE")
        if not sep:
            if env is None or key not in env:
                raise UsageError(f"{what} {item!r} is not KEY=VALUE" + (" (and not set here)" if env else ""))
            value = env[key]
        pairs[key] = value
    return pairs


def build_spec(
    *,
    file: str | None = None,
    spec_file: str | None = None,
    command: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
    env_pairs: Sequence[str] = (),
    label_pairs: Sequence[str] = (),
    interpreter: str | None = None,
    program: str | None = None,
) -> v1.JobSpec:
    """Spec file first, then the code file, then the command, then flags on top.

    After ``--``, words are the command, or the arguments of the code file or program when there is one.
    """
    if file and not spec_file and is_spec_file(file):
        file, spec_file = None, file
    raw: dict[str, Any] = load_spec_file(Path(spec_file)) if spec_file else {}
    if file:
        for key in _SOURCES:
            raw.pop(key, None)
        raw["code"] = code_of(Path(file), shlex.split(interpreter) if interpreter else None)
    if program:
        if file:
            raise UsageError("give a script or --program, not both")
        for key in _SOURCES:
            raw.pop(key, None)
        raw["program"] = program
    if command:
        if any(raw.get(k) is not None for k in ("code", "program", "script")):
            raw["args"] = list(command)
        else:
            raw["command"] = list(command)
    if not any(raw.get(k) is not None for k in _SOURCES):
        raise UsageError(
            "nothing to run: give a script (jobwire submit train.py), a command after `--` "
            "(jobwire submit -- echo hi), or a spec file (-f job.yaml)"
        )
    _apply_flags(raw, dict(flags or {}))
    if env_pairs:
        raw["env"] = {**(raw.get("env") or {}), **parse_pairs(env_pairs, "--env", os.environ)}
    if label_pairs:
        raw["labels"] = {**(raw.get("labels") or {}), **parse_pairs(label_pairs, "--label")}
    if not raw.get("name"):
        name = _default_name(raw)
        if name:
            raw["name"] = name
    if isinstance(raw.get("expected_runtime"), str):
        raw["expected_runtime"] = _seconds(raw["expected_runtime"], "expected_runtime")
    try:
        return v1.convert_strict(raw, v1.JobSpec)
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        raise UsageError(f"invalid job spec: {exc}") from exc


RESOURCE_FLAGS = ("cpus", "gpus", "memory", "walltime")
ARRAY_RETRY_FLAGS = ("array", "retry", "retry_backoff", "retry_on", "after")
TOP_FLAGS = ("name", "image", "workdir", "backend", "node", "pool", "max_attempts", "priority")


_ARRAY = re.compile(r"^(\d+)(?:-(\d+))?(?:%(\d+))?$")


def parse_array(text: str) -> dict[str, int]:
    """``sbatch --array`` ranges: ``0-999%10`` (indices 0 to 999, at most 10 at once), ``1-100``, ``7``."""
    m = _ARRAY.match(text.strip())
    if m is None:
        raise UsageError(f"--array {text!r}: give FIRST-LAST[%PARALLEL], e.g. 0-999%10 (no lists)")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    if last < first:
        raise UsageError(f"--array {text!r}: the last index is before the first")
    array = {"start": first, "count": last - first + 1}
    if m.group(3) is not None:
        array["parallelism"] = int(m.group(3))
    return array


#: ``--after ID:WHEN``: jobwire's words, and Slurm's for the same (``afterok`` ...)
_WHEN = {"succeeded": "succeeded", "ok": "succeeded", "failed": "failed", "notok": "failed"}
_WHEN |= {"finished": "finished", "any": "finished"}


def parse_after(text: str) -> dict[str, str]:
    """``--after ID`` (it must succeed) or ``--after ID:failed`` / ``:finished`` (or Slurm's ``ok``,
    ``notok``, ``any``)."""
    job, _, when = text.strip().partition(":")
    if not job or (when and when not in _WHEN):
        raise UsageError(f"--after {text!r}: give JOB or JOB:succeeded|failed|finished")
    return {"job": job, "when": _WHEN[when or "succeeded"]}


def _apply_flags(raw: dict[str, Any], flags: dict[str, Any]) -> None:
    for key in TOP_FLAGS:
        if flags.get(key) is not None:
            raw[key] = flags[key]
    if flags.get("after"):
        raw["after"] = [*(raw.get("after") or []), *(parse_after(a) for a in flags["after"])]
    if flags.get("array") is not None:
        raw["array"] = parse_array(flags["array"])
    retry = dict(raw.get("retry") or {})
    if flags.get("retry") is not None:
        retry["attempts"] = flags["retry"]
    if flags.get("retry_backoff") is not None:
        retry["backoff"] = _seconds(flags["retry_backoff"], "--retry-backoff")
    if flags.get("retry_on") is not None:
        retry["on"] = [o.strip() for o in flags["retry_on"].split(",") if o.strip()]
    if retry:
        raw["retry"] = retry
    if flags.get("expected_time") is not None:
        raw["expected_runtime"] = _seconds(flags["expected_time"], "--expected-time")
    resources = dict(raw.get("resources") or {})
    for key in RESOURCE_FLAGS:
        if flags.get(key) is not None:
            resources[key] = flags[key]
    if resources:
        raw["resources"] = resources


def _seconds(value: str, what: str) -> float:
    try:
        return v1.parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from exc


def _default_name(raw: dict[str, Any]) -> str | None:
    """The script's file name, or the command's program, as sbatch names jobs after their script."""
    code, command = raw.get("code"), raw.get("command")
    if isinstance(code, dict):
        candidate = str(code.get("filename") or "")
    elif isinstance(command, list) and command:
        candidate = os.path.basename(str(command[0]))
    elif isinstance(raw.get("program"), str):
        candidate = raw["program"]
    else:
        return None
    return candidate if _NAME.match(candidate) else None
