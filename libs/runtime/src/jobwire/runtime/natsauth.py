"""NATS users and subject permissions for a locked-down bus, written as a nats-server config block.

Every service gets its own user and only the subjects its code uses, so a leaked executor password
cannot submit commands or read another node's work. Replies reach each user on its own inbox prefix
(``_INBOX.<user>.>``, set by ``bus.connect``), so no user can read another's JetStream deliveries.

``python -m jobwire.runtime.natsauth DIR --executor NODE ...`` writes ``DIR/nats-auth.conf`` (for
``include`` in nats.conf) and one ``DIR/nats-<user>.password`` per user, keeping passwords that exist.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobwire.contracts.v1 import subjects as sj

OBSERVER = "observer"
SCHEDULER = "scheduler"
GATEWAY = "gateway"
EXECUTOR_PREFIX = "executor-"
INPUT_BUCKET = sj.INPUT_BUCKET  # named inputs (gateway writes, executors read)

_API = "$JS.API"
# Read-only JetStream API calls any client library makes while binding to streams and buckets.
_API_READ = [f"{_API}.INFO", f"{_API}.STREAM.NAMES", f"{_API}.STREAM.LIST", f"{_API}.STREAM.INFO.>"]


def inbox_prefix(user: str) -> str:
    """The reply-subject prefix a user's connection uses (``_INBOX.<user>``), one subject token per user."""
    return f"_INBOX.{sj.check_token(user, 'NATS user')}"


def _obj(bucket: str) -> str:
    return f"OBJ_{bucket}"


def _kv(bucket: str) -> str:
    return f"KV_{bucket}"


def _consumers(stream: str) -> list[str]:
    """Ephemeral/ordered consumers on ``stream`` (how KV watches, object reads and log follows work)."""
    return [
        f"{_API}.CONSUMER.CREATE.{stream}",
        f"{_API}.CONSUMER.CREATE.{stream}.>",
        f"{_API}.CONSUMER.INFO.{stream}.>",
        f"{_API}.CONSUMER.DELETE.{stream}.>",
        # pulls from its own pull consumers (the gateway reads logs and events a batch at a time)
        f"{_API}.CONSUMER.MSG.NEXT.{stream}.>",
    ]


def _reads(stream: str) -> list[str]:
    """Reading single messages of ``stream`` (last log chunk, latest progress, KV and object metadata)."""
    return [f"{_API}.STREAM.MSG.GET.{stream}", f"{_API}.DIRECT.GET.{stream}", f"{_API}.DIRECT.GET.{stream}.>"]


def _object_writes(bucket: str) -> list[str]:
    """Putting objects: chunks and metadata under ``$O.<bucket>``, and purging an overwritten one's chunks."""
    return [f"$O.{bucket}.>", f"{_API}.STREAM.PURGE.{_obj(bucket)}"]


@dataclass
class Permissions:
    """One user's allow-lists; ``allow_responses`` lets it answer requests (micro ``status``) on any inbox."""

    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    allow_responses: bool = True

    def as_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "publish": {"allow": self.publish} if self.publish else {"deny": [">"]},
            "subscribe": {"allow": self.subscribe} if self.subscribe else {"deny": [">"]},
        }
        if self.allow_responses:
            out["allow_responses"] = True
        return out


#: asking a service for its micro ``status`` (container health checks use the service's own user)
STATUS_REQUESTS = "jobwire.svc.*.status"


def _service_subscribe(user: str) -> list[str]:
    """Its own inbox, and the micro-service discovery and ``status`` subjects (``nats micro ls``)."""
    return [f"{inbox_prefix(user)}.>", "$SRV.>", "jobwire.svc.>"]


def scheduler() -> Permissions:
    """The bus's owner: declares streams and buckets, consumes commands and reports, dispatches work,
    publishes transitions, holds the leader lease."""
    return Permissions(
        publish=[
            "jobwire.exec.>",
            "jobwire.evt.>",
            f"{_API}.>",
            f"$JS.ACK.{sj.CMD_STREAM}.>",
            f"$JS.ACK.{sj.REPORT_STREAM}.>",
            f"$KV.{sj.LEADER_BUCKET}.>",
            f"$KV.{sj.TOKEN_BUCKET}.>",
            STATUS_REQUESTS,
        ],
        subscribe=[*_service_subscribe(SCHEDULER), sj.HEARTBEAT_SUBJECTS],
    )


def gateway() -> Permissions:
    """Publishes commands; reads events, logs, progress, artifacts and program catalogs; keeps idempotency
    keys and inputs.
    It cannot create, change or purge the jobwire streams."""
    idem = f"KV_{sj.IDEMPOTENCY_BUCKET}"
    return Permissions(
        publish=[
            "jobwire.cmd.>",
            STATUS_REQUESTS,
            sj.FILES_SUBJECTS,  # a running job's files, asked of its node's executor
            f"$KV.{sj.IDEMPOTENCY_BUCKET}.>",
            *_object_writes(INPUT_BUCKET),
            *_API_READ,
            *_consumers(sj.EVT_STREAM),
            *_consumers(sj.LOG_STREAM),
            *_consumers(_obj(sj.ARTIFACT_BUCKET)),
            *_consumers(_obj(INPUT_BUCKET)),
            *_reads(sj.EVT_STREAM),
            *_reads(sj.LOG_STREAM),
            *_reads(idem),
            *_reads(_obj(sj.ARTIFACT_BUCKET)),
            *_reads(_obj(INPUT_BUCKET)),
            *_consumers(_kv(sj.PROGRAM_BUCKET)),
            *_reads(_kv(sj.PROGRAM_BUCKET)),
            *_consumers(_kv(sj.TOKEN_BUCKET)),  # watching token records
            *_reads(_kv(sj.TOKEN_BUCKET)),
        ],
        # transitions: a submit, cancel or delete waits for the scheduler's event (one subscription);
        # heartbeats: the registered nodes its submit check knows, before the scheduler stores them
        subscribe=[*_service_subscribe(GATEWAY), sj.JOB_EVENT_SUBJECTS, sj.HEARTBEAT_SUBJECTS],
    )


def executor(node: str) -> Permissions:
    """Reads only its own node's work (its durable consumer, created with its node's filter in the API
    subject, so the server checks it); publishes reports, heartbeats, progress, logs, artifacts and its
    own program catalog."""
    sj.check_token(node, "node")
    durable = f"exec-{node}"
    exec_stream = sj.EXEC_STREAM
    return Permissions(
        publish=[
            f"jobwire.report.{node}.>",
            sj.heartbeat_subject(node),
            "jobwire.evt.job.*.progress",
            "jobwire.log.>",
            STATUS_REQUESTS,
            *_object_writes(sj.ARTIFACT_BUCKET),
            *_API_READ,
            f"{_API}.CONSUMER.CREATE.{exec_stream}.{durable}.{sj.exec_filter(node)}",
            f"{_API}.CONSUMER.INFO.{exec_stream}.{durable}",
            f"{_API}.CONSUMER.MSG.NEXT.{exec_stream}.{durable}",
            f"$JS.ACK.{exec_stream}.{durable}.>",
            *_reads(sj.LOG_STREAM),
            *_reads(_obj(sj.ARTIFACT_BUCKET)),
            *_consumers(_obj(INPUT_BUCKET)),
            *_reads(_obj(INPUT_BUCKET)),
            f"$KV.{sj.PROGRAM_BUCKET}.{node}",  # its own program catalog, no other node's
        ],
        subscribe=[*_service_subscribe(executor_user(node)), sj.files_subject(node)],
    )


def observer() -> Permissions:
    """Read-only: ``nats sub 'jobwire.evt.>'`` and nothing else, not even a reply."""
    return Permissions(publish=[], subscribe=[sj.EVT_SUBJECTS], allow_responses=False)


def executor_user(node: str) -> str:
    return EXECUTOR_PREFIX + sj.check_token(node, "node")


def users_for(executors: Iterable[str]) -> dict[str, Permissions]:
    """Every user of one deployment: scheduler, gateway, observer and one per executor node."""
    users = {SCHEDULER: scheduler(), GATEWAY: gateway(), OBSERVER: observer()}
    for node in executors:
        users[executor_user(node)] = executor(node)
    return users


def render(users: dict[str, Permissions], passwords: dict[str, str]) -> str:
    """An ``authorization { users: [...] }`` block; JSON values are valid nats-server config syntax."""
    entries = [
        {"user": name, "password": passwords[name], "permissions": perms.as_config()}
        for name, perms in users.items()
    ]
    body = json.dumps(entries, indent=2)
    head = "# generated by python -m jobwire.runtime.natsauth; holds secrets, keep it 0600"
    return f"{head}\nauthorization {{\n  users: {body}\n}}\n"


def render_routes(password: str, nodes: Sequence[str] = ("nats", "nats-2", "nats-3")) -> str:
    """The ``cluster {}`` part of a 3-node cluster: routes between the nodes need the route password."""
    routes = [f"nats://route:{password}@{n}:6222" for n in nodes]
    return (
        f"authorization {{ user: route, password: {json.dumps(password)} }}\nroutes: {json.dumps(routes)}\n"
    )


def _secret_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def generate(out: Path, executors: Sequence[str]) -> dict[str, str]:
    """Write the auth block and password files under ``out``; existing passwords are kept (rotating one
    is deleting its file and running again). Returns the password-file path of each user."""
    out.mkdir(parents=True, exist_ok=True)
    users = users_for(executors)
    passwords: dict[str, str] = {}
    files: dict[str, str] = {}
    for name in users:
        pw_file = out / f"nats-{name}.password"
        if pw_file.exists():
            passwords[name] = pw_file.read_text().strip()
        else:
            passwords[name] = secrets.token_urlsafe(24)
            _secret_file(pw_file, passwords[name])
        files[name] = str(pw_file)
    _secret_file(out / "nats-auth.conf", render(users, passwords))
    route_file = out / "nats-route.password"
    if not route_file.exists():
        _secret_file(route_file, secrets.token_urlsafe(24))
    _secret_file(out / "nats-routes.conf", render_routes(route_file.read_text().strip()))
    return files


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m jobwire.runtime.natsauth", description=__doc__)
    p.add_argument("out", type=Path, help="directory for nats-auth.conf and the password files")
    p.add_argument("--executor", action="append", default=[], metavar="NODE", help="executor node (repeat)")
    args = p.parse_args(argv)
    files = generate(args.out, args.executor)
    for name, path in files.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
