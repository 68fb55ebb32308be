"""SLURM through slurmrestd (``slurm-rest``): the same batch script, submitted and listed over REST.

The adapter is still handed a transport: requests are ``curl`` commands run where the transport
runs (the login node, or across SSH). The JWT travels as headers on curl's stdin (``-H @-``), so it
is never in an argv, a URL or a log line. slurmrestd 22.05 ignores ``#SBATCH`` lines, so the job
description is built from the same directives (data, from :meth:`Slurm.directives`), GPUs
included. API versions v0.0.38 to v0.0.41 (SLURM
22.05 to 24.11) are spoken; what differs between them lives in :mod:`.slurm_rest_formats`.
``/slurmdb`` exit codes are wrong in 22.05 (v0.0.38), so there they come only from the exit-code
file; from v0.0.39 on accounting's exit code is the fallback when that file is missing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from jobwire.contracts.v1 import Usage
from jobwire.execution.hpc import (
    Accounting,
    BatchRequest,
    Directive,
    Phase,
    QueueEntry,
    SchedulerError,
    SchedulerUnavailable,
)
from jobwire.execution.hpc.values import parse_duration_hms
from jobwire.execution.transport import ExecResult, Transport

from .slurm import HELD_REASONS, OUTCOMES, Slurm
from .slurm_rest_formats import (
    DIALECTS,
    VERSIONS,
    choose_version,
    exit_code,
    number,
    seconds,
    state_of,
    tres_count,
)

log = logging.getLogger(__name__)
#: curl exit codes that mean slurmrestd was not reached or did not answer (resolve, connect,
#: timeout, empty reply, send/receive failures, TLS connect, proxy)
CURL_UNREACHABLE = {5, 6, 7, 28, 35, 52, 55, 56, 97}
#: SLURM error numbers of a request slurmctld refused on its merits (ESLURM_*: bad partition,
#: account, limits); other errors behind a 5xx (communication, authentication) are the service's
REFUSALS = range(2000, 4000)


def job_description(directives: Sequence[Directive]) -> dict[str, Any]:
    """The v0.0.38 ``job`` object for :class:`Slurm`'s directives (sbatch options as JSON);
    :meth:`Dialect.submit_body` spells it for newer versions (``gres`` as ``tres_per_node``)."""
    d = {option.removeprefix("--"): value for option, value in directives}
    job: dict[str, Any] = {
        "name": d["job-name"],
        "current_working_directory": d["chdir"],
        "standard_output": d["output"],
        "standard_error": d["error"],
        "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
        # a gang asks its tasks per node: the job's tasks are that times its nodes
        "tasks": int(d["ntasks-per-node"]) * int(d.get("nodes", "1"))
        if "ntasks-per-node" in d
        else int(d.get("ntasks", "1")),
        "cpus_per_task": int(d.get("cpus-per-task", "1")),
        "nodes": d.get("nodes", "1"),
    }
    for key, name in (
        ("partition", "partition"),
        ("account", "account"),
        ("qos", "qos"),
        ("constraint", "constraints"),
        ("gres", "gres"),
    ):
        if key in d:
            job[name] = d[key]
    if "mem" in d:
        job["memory_per_node"] = int(d["mem"].rstrip("M"))
    if "time" in d:
        job["time_limit"] = max(1, math.ceil((parse_duration_hms(d["time"]) or 60) / 60))
    return job


class SlurmRest(Slurm):
    name = "slurm-rest"
    #: slurmrestd submits as the user its token names: run-as would need a token per account
    supports_run_as = False
    supports_hold = False
    #: the REST submit posts one job description and its lists read job records by job id: an
    #: array's tasks stay jobs of their own here
    array_task_variable = None
    #: its gangs still run the command once (the rank launch is SLURM CLI's, not tested over REST)
    gang_launch = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.options.get("url", "http://127.0.0.1:6820").rstrip("/")
        self.version = self.options.get("version") or VERSIONS[0]
        if self.version not in DIALECTS:
            raise SchedulerError(
                f"slurm-rest: API version {self.version!r} is not spoken here; "
                f"use one of {', '.join(VERSIONS)}"
            )

    # --- the request pairs (argv without secrets; headers come from :meth:`headers`) -------------

    def _curl(self, path: str, *extra: str) -> list[str]:
        argv = [self.cmd("curl"), "-sS", "--max-time", "60", "-H", "@-", "-w", "\n%{http_code}"]
        if proxy := self.options.get("proxy"):
            argv += ["--socks5-hostname", proxy]
        return [*argv, *extra, f"{self.url}{path}"]

    def token_setting(self) -> str:
        """Where the token comes from, as an operator configures it (named in every auth error)."""
        if token_file := self.options.get("token_file"):
            return f"JOBWIRE_HPC_REST_TOKEN_FILE ({token_file})"
        return "JOBWIRE_HPC_REST_TOKEN"

    def headers(self) -> bytes:
        """X-SLURM-USER-NAME/TOKEN read fresh each time (tokens rotate); never logged.

        A token whose ``exp`` has passed is not sent: slurmrestd 22.05 answers it with an HTTP 500
        about zero bytes, which names neither the token nor the setting to renew.
        """
        token = self.options.get("token")
        if token_file := self.options.get("token_file"):
            try:
                with open(token_file) as f:
                    token = f.read().strip()
            except OSError as e:
                raise SchedulerUnavailable(
                    f"cannot read the slurmrestd token from {self.token_setting()}: {e.strerror}"
                ) from e
        if not token:
            raise SchedulerUnavailable(
                "slurm-rest needs a token (JOBWIRE_HPC_REST_TOKEN_FILE or JOBWIRE_HPC_REST_TOKEN)"
            )
        expires = token_expiry(token)
        if expires is not None and expires <= time.time():
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
            raise SchedulerUnavailable(
                f"the slurmrestd token in {self.token_setting()} expired at {when}: write a fresh one "
                "there (scontrol token username=USER lifespan=SECONDS)"
            )
        user = self.options.get("user", "root")
        return f"X-SLURM-USER-NAME: {user}\nX-SLURM-USER-TOKEN: {token}\n".encode()

    def build_submit(self, script_path: str) -> list[str]:
        return self._curl(
            f"/slurm/{self.version}/job/submit",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            f"@{script_path}.json",
        )

    def _json(self, result: ExecResult, what: str, ok: tuple[int, ...] = (200,)) -> dict[str, Any]:
        return _json(result, what, ok, token_setting=self.token_setting())

    def parse_submit(self, result: ExecResult) -> str:
        body = self._json(result, "job submit")
        job_id = body.get("job_id")
        if not isinstance(job_id, int):
            raise SchedulerError(f"slurmrestd returned no job id: {body.get('errors')}")
        return str(job_id)

    def build_list(self, ids: Sequence[str]) -> list[str]:
        return self._curl(f"/slurm/{self.version}/jobs")

    def parse_list(self, result: ExecResult, ids: Sequence[str]) -> dict[str, QueueEntry]:
        wanted = set(ids)
        out: dict[str, QueueEntry] = {}
        for job in self._json(result, "jobs").get("jobs", []):
            job_id = str(job.get("job_id"))
            if job_id not in wanted:
                continue
            native = state_of(job.get("job_state"))
            reason = str(job.get("state_reason") or "")
            phase = self.map_state(native)
            if phase is Phase.QUEUED and reason in HELD_REASONS:
                phase = Phase.HELD
            nodes = str(job.get("nodes") or "")
            out[job_id] = QueueEntry(
                job_id, native, phase, None if reason in ("None", "") else reason, [nodes] if nodes else []
            )
        return out

    def build_find(self, name: str) -> list[str]:
        return self._curl(f"/slurm/{self.version}/jobs")

    def parse_find(self, result: ExecResult, name: str) -> list[str]:
        jobs = self._json(result, "jobs").get("jobs", [])
        return [str(j.get("job_id")) for j in jobs if j.get("name") == name]

    def build_kill(self, job_id: str) -> list[str]:
        return self._curl(f"/slurm/{self.version}/job/{job_id}", "-X", "DELETE")

    def parse_kill(self, result: ExecResult) -> None:
        self._json(result, "job cancel", ok=(200, 404))

    def build_hold(self, job_id: str) -> list[str] | None:
        return None

    def build_release(self, job_id: str) -> list[str] | None:
        return None

    def build_accounting(self, ids: Sequence[str], since: float) -> list[str]:
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 3600))
        # slurmrestd answers 400 to an unencoded time: let curl encode the query
        return self._curl(f"/slurmdb/{self.version}/jobs", "-G", "--data-urlencode", f"start_time={start}")

    def parse_accounting(self, result: ExecResult, ids: Sequence[str]) -> dict[str, Accounting]:
        wanted = set(ids)
        out: dict[str, Accounting] = {}
        for job in self._json(result, "accounting").get("jobs", []):
            job_id = str(job.get("job_id"))
            if job_id not in wanted:
                continue
            out[job_id] = self._accounting(job_id, job)
        return out

    def _accounting(self, job_id: str, job: dict[str, Any]) -> Accounting:
        state = job.get("state") or {}
        native = state_of(state.get("current"))
        outcome, reason = OUTCOMES.get(native, (None, None))
        if native == "FAILED" and state.get("reason") not in (None, "", "None", "NonZeroExitCode"):
            reason = str(state["reason"])
        steps = [s for s in job.get("steps") or [] if isinstance(s, dict)]
        # MaxRSS and MaxDiskRead are TRESUsageInMax: "tres/requested/max" of each step
        in_max = [((s.get("tres") or {}).get("requested") or {}).get("max") for s in steps]
        rss = [r for r in (tres_count(t, "mem") for t in in_max) if r is not None]
        reads = [r for r in (tres_count(t, "fs/disk") for t in in_max) if r is not None]
        nodes = str(job.get("nodes") or "")
        usage = Usage(
            wall_seconds=float(number((job.get("time") or {}).get("elapsed")) or 0),
            cpu_seconds=sum(seconds((s.get("time") or {}).get("total")) for s in steps),
            max_rss_bytes=max(rss) if rss else None,
            io_read_bytes=sum(reads) if reads else None,
            node_list=[nodes] if nodes and nodes != "None assigned" else None,
        )
        final = self.map_state(native) is Phase.DONE
        # v0.0.38 (22.05) reports exit code 0 for failed jobs: None leaves it to the exit-code file
        code = (
            exit_code(job.get("exit_code"))
            if final and DIALECTS[self.version].accounting_exit_codes
            else None
        )
        return Accounting(job_id, native, code, outcome, reason, usage, final)

    # --- glue: headers on stdin, the job description next to the script ------------------------

    async def _run(
        self,
        transport: Transport,
        argv: list[str],
        timeout: float = 60.0,
        inherit: Sequence[str] | None = None,
    ) -> ExecResult:
        return await transport.run(
            argv, stdin=self.headers(), env=self.env or None, timeout=timeout, inherit=inherit
        )

    def submit_files(
        self, req: BatchRequest, directives: Sequence[Directive], script: str
    ) -> dict[str, bytes]:
        """The request body beside the script (``<script>.json``), which :meth:`build_submit` posts."""
        body = DIALECTS[self.version].submit_body(job_description(directives), script)
        return {".json": json.dumps(body).encode()}

    async def prepare(self, transport: Transport) -> None:
        """Pick the newest API version both sides speak, from slurmrestd's OpenAPI document."""
        if self.options.get("version"):
            return
        doc = self._json(await self._run(transport, self._curl("/openapi/v3")), "openapi")
        version = choose_version(doc.get("paths") or {})
        if version is None:
            raise SchedulerError(
                f"slurmrestd offers none of {', '.join(VERSIONS)} for both /slurm and /slurmdb jobs "
                "(start it with those openapi plugins, or set JOBWIRE_HPC_REST_VERSION)"
            )
        self.version = version
        log.info("slurmrestd API version %s", version)


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (epoch seconds), read without verifying it; None when absent."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def _errors(data: Any) -> list[dict[str, Any]]:
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors or [] if isinstance(e, dict)]


def _json(
    result: ExecResult,
    what: str,
    ok: tuple[int, ...] = (200,),
    token_setting: str = "its token setting",  # noqa: S107 - a setting's name
) -> dict[str, Any]:
    """The body of a ``curl -w '\\n%{http_code}'`` call; SchedulerError unless the status is in ``ok``.

    SchedulerUnavailable for what is the service's fault, not the request's: slurmrestd not
    reached, 401/403 (the token is rejected), and 5xx unless every error is a SLURM refusal of the
    request itself (ESLURM_*: bad partition, account, limits).
    """
    if result.rc != 0:
        err = result.stderr.decode("utf-8", "replace").strip()
        text = f"slurmrestd {what}: curl failed with exit code {result.rc}: {err[-500:]}"
        raise (SchedulerUnavailable if result.rc in CURL_UNREACHABLE else SchedulerError)(text)
    body, _, code = result.stdout.decode("utf-8", "replace").rpartition("\n")
    status = int(code) if code.strip().isdigit() else 0
    try:
        data = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError:
        data = {}
    if status in ok:
        return data if isinstance(data, dict) else {}
    errors = _errors(data)
    shown = "; ".join(_said(e) for e in errors) or body[:300]
    if status in (401, 403):
        raise SchedulerUnavailable(
            f"slurmrestd rejected the token (HTTP {status}: {shown}): it is expired or not valid for "
            f"this user; renew it in {token_setting}"
        )
    numbers = [_errno(e) for e in errors]
    refused = bool(numbers) and all(n in REFUSALS for n in numbers if n is not None) and None not in numbers
    if status == 0 or (status >= 500 and not refused):
        hint = ""
        if any(_auth_like(e) for e in errors):
            hint = (
                f"; slurmctld dropped the request, as it does with an expired or rejected token: check "
                f"the token in {token_setting}"
            )
        raise SchedulerUnavailable(f"slurmrestd {what}: HTTP {status}: {shown}{hint}")
    raise SchedulerError(f"slurmrestd {what}: HTTP {status}: {shown}")


def _said(error: dict[str, Any]) -> str:
    """``error: description`` as present (v0.0.38 has ``error`` only)."""
    parts = [str(error[k]) for k in ("error", "description") if error.get(k)]
    return ": ".join(dict.fromkeys(parts)) or json.dumps(error)[:200]


def _errno(error: dict[str, Any]) -> int | None:
    n = error.get("error_number", error.get("error_code", error.get("errno")))
    return n if isinstance(n, int) else None


def _auth_like(error: dict[str, Any]) -> bool:
    """The 22.05 answer to a token slurmctld refuses: the connection closed with nothing sent."""
    text = str(error.get("error") or error.get("description") or "").lower()
    return any(k in text for k in ("zero bytes", "authentication", "credential", "jwt", "token"))
