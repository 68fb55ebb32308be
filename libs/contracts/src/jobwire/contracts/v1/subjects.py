"""Stream, subject and bucket names. Node names and job ids are single subject tokens."""

from __future__ import annotations

import re
from urllib.parse import quote

CMD_STREAM = "JOBWIRE_CMD"
EXEC_STREAM = "JOBWIRE_EXEC"
REPORT_STREAM = "JOBWIRE_REPORT"
EVT_STREAM = "JOBWIRE_EVT"
LOG_STREAM = "JOBWIRE_LOG"

CMD_SUBJECTS = "jobwire.cmd.>"
EXEC_SUBJECTS = "jobwire.exec.>"
REPORT_SUBJECTS = "jobwire.report.>"
EVT_SUBJECTS = "jobwire.evt.>"
#: every job's transitions: the gateway's acceptance waiters hold one core subscription to it
JOB_EVENT_SUBJECTS = "jobwire.evt.job.>"
LOG_SUBJECTS = "jobwire.log.>"
HEARTBEAT_SUBJECTS = "jobwire.node.*.heartbeat"

ARTIFACT_BUCKET = "jobwire_artifacts"
IDEMPOTENCY_BUCKET = "jobwire_idempotency"
LEADER_BUCKET = "jobwire_leader"
INPUT_BUCKET = "jobwire_inputs"
#: one key per executor node: its program catalog (``contracts.v1.programs.ProgramCatalog``)
PROGRAM_BUCKET = "jobwire_programs"
#: one key per API token id: its record (hash, never the secret), put by the scheduler after its commit
TOKEN_BUCKET = "jobwire_tokens"  # noqa: S105 - a bucket name, not a secret

MSG_ID_HEADER = "Nats-Msg-Id"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_token(value: str, what: str) -> str:
    """Refuse anything that would change a subject's shape (dots, wildcards, spaces)."""
    if not _TOKEN.fullmatch(value):  # fullmatch: `$` would also admit a trailing newline
        raise ValueError(f"{what} {value!r} may use only letters, digits, '_' and '-' (at most 128)")
    return value


def cmd_subject(kind: str) -> str:
    return f"jobwire.cmd.{kind}"


def files_subject(node: str) -> str:
    """Requests for a node's job directories (``contracts.v1.files``), answered by its executor."""
    return f"jobwire.files.{check_token(node, 'node')}"


FILES_SUBJECTS = "jobwire.files.*"


def exec_subject(node: str, kind: str) -> str:
    return f"jobwire.exec.{check_token(node, 'node')}.{kind}"


def exec_filter(node: str) -> str:
    return f"jobwire.exec.{check_token(node, 'node')}.>"


def report_subject(node: str, job_id: str, kind: str) -> str:
    return f"jobwire.report.{check_token(node, 'node')}.{check_token(job_id, 'job id')}.{kind}"


def reports_subject(node: str) -> str:
    """Where a node's grouped reports (``RunReports``) go; inside the node's own report subjects."""
    return f"jobwire.report.{check_token(node, 'node')}.batch"


def report_node(subject: str) -> str | None:
    """The node a report subject names (``jobwire.report.<node>....``), None for another subject."""
    parts = subject.split(".")
    return parts[2] if len(parts) >= 4 and parts[:2] == ["jobwire", "report"] else None


def event_subject(job_id: str, kind: str) -> str:
    return f"jobwire.evt.job.{check_token(job_id, 'job id')}.{kind}"


def job_events_filter(job_id: str) -> str:
    return f"jobwire.evt.job.{check_token(job_id, 'job id')}.>"


def log_subject(job_id: str, stream: str) -> str:
    return f"jobwire.log.{check_token(job_id, 'job id')}.{stream}"


def rank_stream(stream: str, rank: int | None) -> str:
    """The log stream name of one rank of a gang: rank 0 (and a job on one node) keeps ``stdout``,
    rank 2 writes ``stdout-rank2``, a subject of its own (``?rank=2``), so ranks never share offsets."""
    return f"{stream}-rank{rank}" if rank else stream


def job_logs_filter(job_id: str) -> str:
    return f"jobwire.log.{check_token(job_id, 'job id')}.*"


def heartbeat_subject(node: str) -> str:
    return f"jobwire.node.{check_token(node, 'node')}.heartbeat"


def artifact_object(job_id: str, name: str) -> str:
    return f"{check_token(job_id, 'job id')}/{name}"


def input_prefix(owner: str) -> str:
    """Where one owner's inputs live in the inputs bucket. The owner is percent-encoded (owners may hold
    any printable character, ``/`` included), so no owner's prefix is ever another's."""
    return quote(owner, safe="") + "/"


def input_object(owner: str, name: str) -> str:
    """The object holding ``owner``'s input ``name`` (checked by the caller with ``check_input_name``)."""
    return input_prefix(owner) + name


# --- message ids (Nats-Msg-Id): JetStream drops a second message with the same id inside the stream's
# duplicate window, so each id names exactly what must not happen twice. The formats are stable: an
# upgrade that changed one would let a re-send through.


def command_msg_id(job_id: str, kind: str, round_: int | None = None) -> str:
    """A command on a job: once per job (``cancel``, ``delete``), or once per ``round_`` (the job's
    transition count) for commands a job may take again later (``hold``, ``release``)."""
    return f"{job_id}:{kind}" if round_ is None else f"{job_id}:{kind}:{round_}"


def attempt_msg_id(job_id: str, attempt: int, kind: str, *detail: object) -> str:
    """Something about one attempt of a job (work, reports, transitions, log chunks); ``detail`` tells
    apart several of one kind (a cancel's outcome, a progress digest, a log offset, a time)."""
    return ":".join([job_id, str(attempt), kind, *(str(d) for d in detail)])


def job_msg_id(job_id: str, kind: str) -> str:
    """Something that happens to a job once, whatever its attempt (``deleted``)."""
    return f"{job_id}:{kind}"
