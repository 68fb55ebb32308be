"""The CLI's commands, one function each: read the parsed arguments, call the client, print.

Each returns the process's exit status. Errors are raised and turned into messages by ``cli.main``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.text import Text

from jobwire.contracts import v1

from . import config, render, specs, workflow
from .api import JobwireClient
from .models import exit_status, job_finished
from .watch import final_line, watch

#: width given to rich when the output is not a terminal: wide enough that no table is ever cut
#: (rich would otherwise assume 80 columns and clip ids that scripts then pass back to us)
UNCUT = 100_000


def console(stderr: bool = False) -> Console:
    """A rich console; on a terminal it fits the window, elsewhere (pipe, file) it never cuts."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else UNCUT
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


class Output:
    """Where things go: tables and messages through rich, JSON and job output as plain text."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.out = console()
        self.err = console(stderr=True)

    def json(self, data: Any) -> None:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(data)).decode() + "\n")
        sys.stdout.flush()

    def json_line(self, data: Any) -> None:
        sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
        sys.stdout.flush()


def read_batch(path: str) -> list[v1.JobSpec]:
    """Specs from a JSON array, a ``{"jobs": [...]}`` object, or JSON Lines (one spec a line)."""
    text = Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read()
    try:
        if text.lstrip()[:1] in (b"[", b"{") and not _is_json_lines(text):
            raw = msgspec.json.decode(text)
            items = raw["jobs"] if isinstance(raw, dict) and "jobs" in raw else raw
            items = items if isinstance(items, list) else [items]
        else:
            items = [msgspec.json.decode(line) for line in text.splitlines() if line.strip()]
        return [v1.convert_strict(item, v1.JobSpec) for item in items]
    except (msgspec.MsgspecError, KeyError, TypeError) as e:
        raise specs.UsageError(f"{path}: not a list of job specs: {e}") from None


def _is_json_lines(text: bytes) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.lstrip()[:1] == b"{" and line.rstrip()[-1:] == b"}" for line in lines)


def submit_batch(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    done = client.submit_batch(read_batch(args.batch))
    if io.as_json:
        io.json(done)
    elif args.quiet:
        print("\n".join(done.ids), flush=True)
    else:
        line = Text(f"submitted {len(done.ids)} jobs ({done.ids[0]} … {done.ids[-1]})")
        if not done.accepted:
            line.append(" · the scheduler has not confirmed them yet (durably queued)", style="yellow")
        io.out.print(line)
    return 0


def page_link(api_url: str, job_id: str, *, array: bool = False) -> str | None:
    """The dashboard page of a job (or an array), None when no dashboard is known for users."""
    base = config.dashboard_url(api_url)
    if base is None:
        return None
    return f"{base}#/{'arrays' if array else 'jobs'}/{job_id}"


def submit(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    if getattr(args, "batch", None):
        return submit_batch(client, args, io)
    names = (*specs.TOP_FLAGS, *specs.RESOURCE_FLAGS, "expected_time", *specs.ARRAY_RETRY_FLAGS)
    flags = {key: getattr(args, key, None) for key in names}
    spec = specs.build_spec(
        file=args.file,
        spec_file=args.spec_file,
        command=args.command,
        flags=flags,
        env_pairs=args.env,
        label_pairs=args.label,
        interpreter=args.interpreter,
        program=getattr(args, "program", None),
    )
    if spec.array is not None and (args.wait or args.follow):
        raise specs.UsageError("--wait and --follow are for one job; follow an array with `jobwire array ID`")
    # a key per invocation: a retried submit (by the user or a proxy) cannot start the job twice
    done = client.submit_detailed(spec, idempotency_key=args.idempotency_key or str(uuid.uuid4()))
    job = done.job
    if io.as_json:
        io.json(job)
    elif args.quiet:
        print(job.id, flush=True)
    elif spec.array is not None:
        at_once = f", at most {spec.array.parallelism} at once" if spec.array.parallelism else ""
        first, last = spec.array.start, spec.array.start + spec.array.count - 1
        io.out.print(f"submitted array {job.id}: {spec.array.count} tasks ({first}-{last}{at_once})")
    else:
        line = Text(f"submitted {job.id} ")
        line.append_text(render.state_text(job.state.value))
        if job.node:
            line.append(f" on {job.node}")
        if job.queue_position is not None:
            line.append(f" · queue position {job.queue_position}")
        if not done.accepted:
            line.append(" · the scheduler has not confirmed it yet (it is durably queued)", style="yellow")
        (io.err if args.follow else io.out).print(line)
    if not io.as_json and not args.quiet:
        link = page_link(client.base_url, job.id, array=spec.array is not None)
        if link is not None:  # `jobwire open` opens a job's page; an array's is only linked
            hint = "" if spec.array is not None else f"  (jobwire open {job.id})"
            (io.err if args.follow else io.out).print(Text(f"  dashboard: {link}{hint}", style="dim"))
    if args.follow:
        _print_logs(client, job.id, follow=True, offset=None, stream=None, io=io)
        job = client.wait(job.id)
        io.err.print(final_line(job))
        return exit_status(job)
    if args.wait:
        job = client.wait(job.id)
        (io.err if io.as_json or args.quiet else io.out).print(final_line(job))
        return exit_status(job)
    return 0


def array(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """An array's counts by state (non-zero ones), or cancel/hold/release it whole."""
    states = [s.strip() for value in args.state for s in value.split(",") if s.strip()]
    if args.action == "show":
        view = client.get_array(args.array_id, limit=1000 if states else 1, states=states)
    else:
        view = client.array_command(args.array_id, args.action)
    if io.as_json:
        io.json(view)
        return 0
    flags = [f for f in ("held", "cancelled", "done") if getattr(view, f)]
    head = f"array {view.id}: {view.count} tasks, {view.materialised} started so far"
    io.out.print(head + (f" ({', '.join(flags)})" if flags else ""))
    for state, n in view.counts.items():
        if n:
            io.out.print(f"  {state:<10} {n}")
    if states:  # the tasks themselves: which indices failed, and their jobs for `jobwire logs`
        for task in view.tasks:
            code = "" if task.exit_code is None else f" exit {task.exit_code}"
            io.out.print(f"  [{task.index}] {task.state.value}{code} {task.job_id or '(not started)'}")
        if view.next_cursor:
            io.out.print(f"  ... more after index {view.next_cursor} (GET /v1/arrays/{view.id}?cursor=...)")
    return 0


def status(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    job = client.get(args.job)
    if io.as_json:
        io.json(job)
    else:
        io.out.print(render.job_panel(job))
    return 0


def ls(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """Newest first; pages through ``next_cursor`` until ``--limit`` jobs, or all of them with ``--all``."""
    states = [s.strip() for value in args.state for s in value.split(",") if s.strip()]
    filters: dict[str, Any] = {
        "state": states,
        "node": args.node,
        "name": args.name,
        "owner": args.owner,
        "labels": specs.parse_pairs(args.label, "--label"),
    }
    wanted = None if args.all else args.limit
    jobs: list[v1.Job] = []
    cursor: str | None = None
    more = False
    while wanted is None or len(jobs) < wanted:
        size = 200 if wanted is None else min(200, wanted - len(jobs))
        page = client.list_jobs(limit=size, cursor=cursor, **filters)
        jobs.extend(page.items)
        cursor = page.next_cursor
        more = bool(cursor) and bool(page.items)
        if not more:
            break
    if wanted is not None:
        jobs = jobs[:wanted]
    if io.as_json:
        io.json(jobs)
    elif not jobs:
        io.err.print("no jobs", style="dim")
    else:
        io.out.print(render.jobs_table(jobs, clip_names=io.out.is_terminal))
        if more:
            io.err.print(f"newest {len(jobs)} shown; --limit N or --all for more", style="dim")
    return 0


def logs(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    _print_logs(
        client, args.job, follow=args.follow, offset=args.offset, stream=args.stream, io=io, rank=args.rank
    )
    return 0


def _print_logs(
    client: JobwireClient,
    job_id: str,
    *,
    follow: bool,
    offset: int | None,
    stream: str | None,
    io: Output,
    rank: int | None = None,
) -> None:
    """The job's stdout to ours and its stderr to ours (a gang rank's ``stderr-rank2`` too),
    unbuffered so ``-f`` feels live."""
    for piece in client.logs(job_id, follow=follow, offset=offset, stream=stream, rank=rank):
        if io.as_json:
            io.json_line(piece)
            continue
        target = sys.stderr if piece.stream.startswith("stderr") else sys.stdout
        target.write(piece.data)
        target.flush()


def watch_job(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    if io.as_json:
        for event in client.events(args.job):
            io.json_line(event)
        return exit_status(client.get(args.job))
    return watch(client, args.job, io.out)


def cancel(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    job = client.cancel(args.job)
    if io.as_json:
        io.json(job)
    elif job_finished(job):
        io.out.print(final_line(job))
    else:
        io.out.print(f"cancel requested for {job.id} (now {job.state.value})")
    return 0


def hold(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    job = client.hold(args.job)
    if io.as_json:
        io.json(job)
    elif job.state is v1.JobState.HELD:
        io.out.print(f"{job.id} held" + (f" ({job.reason})" if job.reason else ""))
    else:
        io.out.print(f"hold requested for {job.id} (now {job.state.value})")
    return 0


def release(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    job = client.release(args.job)
    if io.as_json:
        io.json(job)
    elif job.state is not v1.JobState.HELD:
        io.out.print(f"{job.id} released (now {job.state.value})")
    else:
        io.out.print(f"release requested for {job.id} (still held)")
    return 0


def requeue(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    job = client.requeue(args.job)
    if io.as_json:
        io.json(job)
    elif job.state is v1.JobState.QUEUED:
        io.out.print(f"{job.id} queued again (after attempt {job.attempt})")
    else:
        io.out.print(f"requeue requested for {job.id} (now {job.state.value}, being stopped)")
    return 0


def rm(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    job = client.delete(args.job)
    io.out.print(f"deleted {args.job}" if job is None else f"deletion of {args.job} requested")
    return 0


def counts(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    by_state = client.count_jobs(
        node=args.node, owner=args.owner, labels=specs.parse_pairs(args.label, "--label")
    )
    if io.as_json:
        io.json(by_state)
    else:
        io.out.print(render.counts_table(by_state))
    return 0


def nodes(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    found = client.nodes()
    if io.as_json:
        io.json(found)
    elif not found:
        io.err.print("no nodes have registered", style="dim")
    else:
        io.out.print(render.nodes_table(found))
    return 0


def programs(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    found = client.programs(name=args.name, version=args.version, cluster=args.cluster, node=args.node)
    if io.as_json:
        io.json(found)
    elif not found:
        asked = any((args.name, args.version, args.cluster, args.node))
        io.err.print("no program matches" if asked else "no node offers programs", style="dim")
    else:
        io.out.print(render.programs_table(found))
    return 0


def artifacts(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """List a job's artifacts, or download one (to ``-o PATH``, ``-o -`` for stdout)."""
    if args.name is None:
        found = client.artifacts(args.job)
        if io.as_json:
            io.json(found)
        elif not found:
            io.err.print(f"job {args.job} has no artifacts", style="dim")
        else:
            io.out.print(render.artifacts_table(found))
        return 0
    if args.output == "-":
        client.download_artifact(args.job, args.name, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    dest = Path(args.output or Path(args.name).name)
    if dest.is_dir():
        dest = dest / Path(args.name).name
    # write beside the target and rename, so a broken download never leaves a truncated file behind
    fd, tmp = tempfile.mkstemp(dir=dest.parent or Path("."), prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            size = client.download_artifact(args.job, args.name, out)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    io.err.print(f"wrote {dest} ({render.fmt_size(size)})")
    return 0


def files(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """List the job's directory on its node (PATH ending in ``/``: below it), or print one file
    (``-o PATH`` writes it there instead) while the job runs."""
    if args.path is None or args.path.endswith("/"):
        found, left = client.files(args.job, (args.path or "").rstrip("/"))
        if io.as_json:
            io.json({"items": found, "truncated": left})
        elif not found:
            io.err.print(f"nothing below {args.path or 'the directory'} of job {args.job}", style="dim")
        else:
            io.out.print(render.files_table(found))
            if left:
                io.err.print(f"... and {left} more entries", style="dim")
        return 0
    if args.output in (None, "-"):
        client.download_file(args.job, args.path, sys.stdout.buffer, offset=args.offset, limit=args.limit)
        sys.stdout.buffer.flush()
        return 0
    dest = Path(args.output)
    if dest.is_dir():
        dest = dest / Path(args.path).name
    fd, tmp = tempfile.mkstemp(dir=dest.parent or Path("."), prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            size = client.download_file(args.job, args.path, out, offset=args.offset, limit=args.limit)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    io.err.print(f"wrote {dest} ({render.fmt_size(size)})")
    return 0


def token_create(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """Print the new token's secret on stdout (the only time it is shown); details go to stderr."""
    scopes = [s.strip() for s in args.scope.split(",") if s.strip()] if args.scope else None
    new = client.create_token(args.owner, days=args.days, scopes=scopes, admin=args.admin, note=args.note)
    if io.as_json:
        io.json(new)
        return 0
    token = new["token"]
    sys.stdout.write(new["secret"] + "\n")
    sys.stdout.flush()
    expires = token.get("expires_at") or "never"
    io.err.print(
        f"{token['id']} for {token['owner']}: {', '.join(token['scopes'])}; expires {expires}. "
        "Store the secret now: it is not shown again.",
        style="dim",
    )
    return 0


def token_list(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    found = client.list_tokens(args.owner)
    if io.as_json:
        io.json(found)
    elif not found:
        io.err.print("no tokens", style="dim")
    else:
        io.out.print(render.tokens_table(found))
    return 0


def token_revoke(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    token = client.revoke_token(args.token_id)
    io.out.print(f"revoked {token['id']} ({token['owner']})")
    return 0


def _input_name(name: str) -> str:
    try:
        return v1.check_input_name(name)
    except ValueError as exc:
        raise specs.UsageError(str(exc)) from None


def input_put(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """Upload a file (``-`` for stdin) as a named input that jobs list in ``inputs``."""
    _input_name(args.name)
    if args.file == "-":
        info = client.put_input(args.name, sys.stdin.buffer, owner=args.owner)
    else:
        with open(args.file, "rb") as f:
            info = client.put_input(args.name, f, owner=args.owner)
    if io.as_json:
        io.json(info)
    else:
        io.out.print(f"{info['name']}: {render.fmt_size(int(info['size']))} stored")
    return 0


def input_get(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    """Download an input to ``-o PATH`` (default: its last name segment; ``-`` for stdout)."""
    _input_name(args.name)
    if args.output == "-":
        client.download_input(args.name, sys.stdout.buffer, owner=args.owner)
        sys.stdout.buffer.flush()
        return 0
    dest = Path(args.output or args.name.rsplit("/", 1)[-1])
    if dest.is_dir():
        dest = dest / args.name.rsplit("/", 1)[-1]
    fd, tmp = tempfile.mkstemp(dir=dest.parent or Path("."), prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            size = client.download_input(args.name, f, owner=args.owner)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    io.err.print(f"wrote {dest} ({render.fmt_size(size)})")
    return 0


def input_ls(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    found = client.list_inputs(args.prefix or "", owner=args.owner)
    if io.as_json:
        io.json(found)
    elif not found:
        io.err.print("no inputs", style="dim")
    else:
        io.out.print(render.inputs_table(found))
    return 0


def input_rm(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    _input_name(args.name)
    client.delete_input(args.name, owner=args.owner)
    io.out.print(f"deleted {args.name}")
    return 0


def workflow_submit(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    done = client.submit_workflow(workflow.read_workflow(args.file))
    if io.as_json:
        io.json(done)
    elif args.quiet:
        print(done.id, flush=True)
    else:
        line = Text(f"submitted workflow {done.id}: {len(done.jobs)} jobs")
        if not done.accepted:
            line.append(" · the scheduler has not confirmed it yet (durably queued)", style="yellow")
        io.out.print(line)
        for name, job_id in done.jobs.items():
            io.out.print(f"  {name}  {job_id}")
        io.out.print(f"see it with: jobwire workflow show {done.id}", style="dim")
    return 0


def workflow_show(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    view = client.workflow(args.workflow_id)
    if io.as_json:
        io.json(view)
    else:
        io.out.print(workflow.draw(view))
    return 0


def workflow_ls(client: JobwireClient, args: argparse.Namespace, io: Output) -> int:
    page = client.list_workflows(limit=args.limit)
    if io.as_json:
        io.json(page)
    else:
        io.out.print(workflow.table(page.items))
    return 0
