"""What changes between slurmrestd API versions, in small pieces.

Reading is shape-tolerant: each decoder below accepts every shape its field has had (v0.0.38 plain
values; v0.0.39+ ``{"set", "infinite", "number"}`` objects; v0.0.40+ state lists), so a response
decodes the same whatever version answered it. Writing differs per version, so each version has a
:class:`Dialect` that says how to spell a job submission for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: API versions this adapter speaks, newest first (SLURM 24.05/24.11, 23.11, 23.02, 22.05)
VERSIONS = ("v0.0.41", "v0.0.40", "v0.0.39", "v0.0.38")
_PATH = re.compile(r"^/(slurm|slurmdb)/(v\d+\.\d+\.\d+)/jobs/?$")

#: state flags that squeue/sacct print instead of the base state, in Slurm's order of precedence
#: (``job_state_string`` in src/common/slurm_protocol_defs.c); v0.0.40+ send them in a list
FLAG_STATES = (
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
)
#: exit status words of v0.0.39+ ``exit_code.status`` that mean "no exit code yet / none"
_NO_CODE = {"PENDING", "INVALID"}


def number(value: Any) -> int | float | None:
    """A plain number, or the value of a v0.0.39+ ``{"set", "infinite", "number"}`` object
    (None when not set or infinite)."""
    if isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def state_of(value: Any) -> str:
    """The single state squeue would print: v0.0.38/39 send a string, v0.0.40+ a list of the base
    state and its flags (``["RUNNING", "COMPLETING"]`` prints as COMPLETING)."""
    if isinstance(value, str):
        return value.split()[0] if value.strip() else "UNKNOWN"
    states = [str(s) for s in value] if isinstance(value, Iterable) else []
    for flag in FLAG_STATES:
        if flag in states:
            return flag
    return states[0] if states else "UNKNOWN"


def exit_code(value: Any) -> int | None:
    """The job's exit code in the shell's convention (signal N → 128+N) from any version's shape:
    a plain int (v0.0.38), a number object (v0.0.39 /jobs), or ``{"status", "return_code",
    "signal": {"id" | "signal_id", "name"}}`` (/slurmdb, and /jobs from v0.0.40)."""
    if not isinstance(value, Mapping) or "status" not in value:
        n = number(value)
        return int(n) if n is not None else None
    status = value.get("status")
    words = {status} if isinstance(status, str) else set(status or [])
    if words & _NO_CODE:
        return None
    sig = value.get("signal") or {}
    signo = number(sig.get("id", sig.get("signal_id"))) if isinstance(sig, Mapping) else None
    if signo:
        return 128 + int(signo)
    code = number(value.get("return_code"))
    return int(code) if code is not None else None


def tres_count(entries: Any, kind: str) -> int | None:
    """The ``count`` of the TRES of type ``kind`` (``mem``, ``fs/disk``) in a TRES list."""
    for t in entries if isinstance(entries, list) else []:
        if isinstance(t, Mapping) and t.get("type") == kind:
            n = number(t.get("count"))
            return int(n) if n is not None and n >= 0 else None
    return None


def seconds(value: Any) -> float:
    """``{"seconds", "microseconds"}`` as seconds."""
    if not isinstance(value, Mapping):
        return 0.0
    return float(number(value.get("seconds")) or 0) + float(number(value.get("microseconds")) or 0) / 1e6


def offered_versions(paths: Iterable[str]) -> set[str]:
    """Versions whose ``/slurm/V/jobs`` and ``/slurmdb/V/jobs`` both appear in an OpenAPI ``paths``
    object (with or without the trailing slash slurmrestd writes from 23.02 on)."""
    seen: dict[str, set[str]] = {}
    for p in paths:
        if m := _PATH.match(p):
            seen.setdefault(m.group(2), set()).add(m.group(1))
    return {v for v, sides in seen.items() if sides == {"slurm", "slurmdb"}}


def choose_version(paths: Iterable[str]) -> str | None:
    """The newest version both this adapter and the server speak."""
    offered = offered_versions(paths)
    return next((v for v in VERSIONS if v in offered), None)


@dataclass(frozen=True)
class Dialect:
    """How one API version wants a job submission spelled."""

    version: str
    #: 0.0.39+: ``time_limit``/``memory_per_node`` are ``{"set": true, "number": N}`` objects
    number_objects: bool = True
    #: 0.0.39+: ``environment`` is a list of ``K=V`` strings (a mapping before)
    environment_list: bool = True
    #: 0.0.40+: the script goes inside ``job``; the top-level ``script`` is deprecated
    script_in_job: bool = True
    #: /slurmdb exit codes can be trusted (22.05's v0.0.38 reports 0 for failed jobs)
    accounting_exit_codes: bool = True
    #: 0.0.39+: ``--gres`` is ``tres_per_node`` (``gres/gpu:2``); v0.0.38 takes ``gres`` as sbatch does
    tres_per_node: bool = True

    def job(self, desc: Mapping[str, Any]) -> dict[str, Any]:
        """The ``job`` object for this version from a v0.0.38-style description."""
        job = dict(desc)
        if self.tres_per_node and "gres" in job:
            job["tres_per_node"] = _tres(job.pop("gres"))
        if self.environment_list:
            job["environment"] = [f"{k}={v}" for k, v in desc.get("environment", {}).items()]
        if self.number_objects:
            for key in ("time_limit", "memory_per_node"):
                if key in job:
                    job[key] = {"set": True, "infinite": False, "number": job[key]}
        return job

    def submit_body(self, desc: Mapping[str, Any], script: str) -> dict[str, Any]:
        job = self.job(desc)
        if self.script_in_job:
            return {"job": {**job, "script": script}}
        return {"job": job, "script": script}


def _tres(gres: str) -> str:
    """``gpu:2,nic:1`` as TRES (``gres/gpu:2,gres/nic:1``), the way sbatch sends ``--gres``."""
    return ",".join(
        g if g.startswith("gres/") else f"gres/{g.removeprefix('gres:')}" for g in gres.split(",")
    )


DIALECTS = {
    "v0.0.38": Dialect(
        "v0.0.38",
        number_objects=False,
        environment_list=False,
        script_in_job=False,
        accounting_exit_codes=False,
        tres_per_node=False,
    ),
    "v0.0.39": Dialect("v0.0.39", script_in_job=False),
    "v0.0.40": Dialect("v0.0.40"),
    "v0.0.41": Dialect("v0.0.41"),
}
