"""The ``jobwire`` command: argument parsing, and turning every failure into a message and an exit status.

Exit statuses: 0 ok; 1 the job failed, or the server erred (5xx); 2 a bad request or bad input (4xx,
usage); 3 the gateway could not be reached; 130 interrupted. ``watch``, ``submit --wait`` and
``submit --follow`` exit with the job's own exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from collections.abc import Callable, Sequence

import argcomplete
from argcomplete.shell_integration import shellcode
from rich.console import Console
from rich.text import Text

from . import commands
from .api import JobwireClient
from .config import resolve_token, resolve_url
from .errors import ApiError, ConnectionFailed, JobwireError, WaitTimeout
from .specs import UsageError

SUBMIT_EXAMPLES = """\
examples:
  jobwire submit train.py --gpus 1 --expected-time 2h -- --epochs 10   # upload train.py, args after --
  jobwire submit --program gromacs@2024.1 -- -deffnm run1              # a catalog program, args after --
  jobwire submit --name hello --follow -- echo hello                  # run a command, stream its output
  jobwire submit -f job.yaml --label run=3 --wait                     # a spec file, flags on top
  jobwire submit --array 0-999%10 --retry 3 -- sh -c 'echo $JOBWIRE_ARRAY_INDEX'  # 1000 tasks, 10 at once
"""

Handler = Callable[[JobwireClient, argparse.Namespace, commands.Output], int]


def _common() -> argparse.ArgumentParser:
    """Options taken before or after the command: ``jobwire --url U ls`` and ``jobwire ls --url U``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="gateway URL (env JOBWIRE_URL)")
    common.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="bearer token (env JOBWIRE_TOKEN, or ~/.config/jobwire/token)",
    )
    return common


def _json_flag(parser: argparse.ArgumentParser, short: bool = True) -> None:
    """``--json``, and kubectl's ``-o json`` where ``-o`` is not already a path (``artifacts``)."""
    parser.add_argument("--json", action="store_true", help="print raw JSON, for scripts")
    if short and "-o" not in parser._option_string_actions:  # a command's own -o PATH wins
        parser.add_argument(
            "-o",
            "--output",
            dest="format",
            choices=("table", "json"),
            default="table",
            help="json: the same as --json",
        )


def wants_json(args: argparse.Namespace) -> bool:
    if getattr(args, "json", False) or getattr(args, "format", None) == "json":
        return True
    # `jobwire artifacts JOB -o json` lists as JSON; with a NAME, -o is where the download goes
    if args.cmd == "files":
        return getattr(args, "path", None) is None and args.output == "json"
    return args.cmd == "artifacts" and getattr(args, "name", None) is None and args.output == "json"


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="jobwire", description="Run and follow jobwire jobs.", parents=[common]
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    p = add(
        "submit", commands.submit, "submit a script, a command (after --) or a spec file", SUBMIT_EXAMPLES
    )
    p.add_argument("file", nargs="?", help="a script to upload (.py, .sh, ...) or a .yaml/.json spec")
    p.add_argument("-f", "--spec", dest="spec_file", metavar="SPEC", help="a YAML or JSON job spec")
    p.add_argument("--program", metavar="NAME@VERSION", help="run a catalog program (see `jobwire programs`)")
    p.add_argument(
        "--batch",
        metavar="FILE",
        help="submit many jobs in one request, stored together: a JSON array of specs, "
        '{"jobs": [...]}, or JSON Lines (- reads stdin); prints their ids',
    )
    p.add_argument("--name")
    p.add_argument("--cpus", type=float)
    p.add_argument("--gpus", type=int)
    p.add_argument("--memory", metavar="SIZE", help="e.g. 4G, 512M")
    p.add_argument("--walltime", metavar="TIME", help="hard limit, e.g. 2h, 01:30:00")
    p.add_argument("--expected-time", metavar="TIME", help="expected runtime, for placement (e.g. 10m)")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="repeatable; bare K copies ours")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="repeatable")
    p.add_argument(
        "--after",
        action="append",
        metavar="JOB[:WHEN]",
        help="run once JOB (a job or array id) ended as WHEN: succeeded (default), failed, finished",
    )
    p.add_argument("--backend")
    p.add_argument("--node")
    p.add_argument("--pool")
    p.add_argument("--image")
    p.add_argument("--workdir")
    p.add_argument("--max-attempts", type=int)
    p.add_argument(
        "--array", metavar="FIRST-LAST[%N]", help="tasks like sbatch's --array: 0-999%%10 = 1000, 10 at once"
    )
    p.add_argument("--retry", type=int, metavar="ATTEMPTS", help="run again on failure, loss or timeout")
    p.add_argument("--retry-backoff", metavar="TIME", help="wait before the 2nd attempt, doubled after")
    p.add_argument("--retry-on", metavar="ENDS", help="comma list of failed, lost, timed_out (default: all)")
    p.add_argument("--priority", type=int)
    p.add_argument("--interpreter", help="how to run the script, e.g. 'python3 -u' (default: by extension)")
    p.add_argument("--idempotency-key", help="retrying with the same key never submits twice")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the job id")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--wait", action="store_true", help="wait for the job; exit with its exit code")
    how.add_argument("--follow", action="store_true", help="stream its output; exit with its exit code")
    _json_flag(p)

    p = add("status", commands.status, "show one job")
    p.add_argument("job")
    _json_flag(p)

    p = add("ls", commands.ls, "list jobs, newest first")
    p.add_argument("--state", action="append", default=[], help="repeatable or comma-separated")
    p.add_argument("--node")
    p.add_argument("--name")
    p.add_argument("--owner")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    p.add_argument("--all", action="store_true", help="every matching job")
    _json_flag(p)

    p = add("counts", commands.counts, "how many jobs are in each state")
    p.add_argument("--node")
    p.add_argument("--owner")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    _json_flag(p)

    p = add("logs", commands.logs, "print a job's output (stdout to stdout, stderr to stderr)")
    p.add_argument("job")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")
    p.add_argument("--stream", choices=("stdout", "stderr"))
    p.add_argument("--rank", type=int, help="only this rank's output, of a gang job (resources.nodes > 1)")
    p.add_argument("--offset", type=int, help="resume after this sequence number")
    _json_flag(p)

    p = add("watch", commands.watch_job, "follow a job's state and progress; exit with its exit code")
    p.add_argument("job")
    _json_flag(p)

    add("cancel", commands.cancel, "cancel a job").add_argument("job")
    add(
        "hold", commands.hold, "hold a queued job (or a batch job its batch system still queues)"
    ).add_argument("job")
    add("release", commands.release, "release a held job").add_argument("job")
    add("requeue", commands.requeue, "run a running or finished job again as a new attempt").add_argument(
        "job"
    )
    add("rm", commands.rm, "delete a job with its logs and artifacts").add_argument("job")

    p = add("array", commands.array, "an array's task counts; cancel, hold or release it whole")
    p.add_argument("array_id", metavar="ARRAY")
    p.add_argument("action", nargs="?", choices=("show", "cancel", "hold", "release"), default="show")
    p.add_argument(
        "--state", action="append", default=[], help="list the tasks in these states (e.g. failed)"
    )
    _json_flag(p)

    p = add("nodes", commands.nodes, "list executor nodes")
    _json_flag(p)

    p = add("programs", commands.programs, "list programs a job may name (program: NAME@VERSION)")
    p.add_argument("--name", help="only this program")
    p.add_argument("--version", help="only this version")
    p.add_argument("--cluster")
    p.add_argument("--node")
    _json_flag(p)

    p = add("artifacts", commands.artifacts, "list a job's artifacts, or download one")
    p.add_argument("job")
    p.add_argument("name", nargs="?")
    p.add_argument(
        "-o", "--output", metavar="PATH", help="where to write it (- for stdout); without NAME, -o json lists"
    )
    _json_flag(p, short=False)

    p = add("files", commands.files, "list a running job's directory, or print one of its files")
    p.add_argument("job")
    p.add_argument("path", nargs="?", help="a file to print (a path ending in / lists below it)")
    p.add_argument("--offset", type=int, default=0, help="start at this byte")
    p.add_argument("--limit", type=int, default=None, help="at most this many bytes")
    p.add_argument("-o", "--output", metavar="PATH", help="write the file there instead of stdout")
    _json_flag(p, short=False)

    p = add("open", open_in_browser, "open a job's page in the web dashboard")
    p.add_argument("job")
    p.add_argument("--print", action="store_true", help="only print the page's address")

    p = sub.add_parser(
        "completion",
        help='print the shell completion script: eval "$(jobwire completion bash)"',
        description="Print a completion script for your shell. bash: add "
        '`eval "$(jobwire completion bash)"` to ~/.bashrc; zsh: the same in ~/.zshrc; fish: '
        "`jobwire completion fish > ~/.config/fish/completions/jobwire.fish`.",
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(offline=completion_script)

    inputs = sub.add_parser(
        "input",
        help="named inputs (config files, datasets) that jobs list in `inputs`",
        description="named inputs: upload once, place in any job with inputs=[{name, path}]",
    )
    input_sub = inputs.add_subparsers(dest="input_cmd", required=True, metavar="ACTION")

    def add_input(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        t = input_sub.add_parser(name, help=help, description=help, parents=[common])
        t.set_defaults(handler=handler)
        t.add_argument("--owner", help="admins: another owner's inputs")
        return t

    p = add_input("put", commands.input_put, "upload a file (- for stdin) as a named input")
    p.add_argument("name", help="e.g. configs/train.yaml")
    p.add_argument("file")
    _json_flag(p)
    p = add_input("get", commands.input_get, "download an input")
    p.add_argument("name")
    p.add_argument("-o", "--output", metavar="PATH", help="where to write it (- for stdout)")
    p = add_input("ls", commands.input_ls, "list inputs")
    p.add_argument("--prefix", help="only names starting with this")
    _json_flag(p)
    add_input("rm", commands.input_rm, "delete an input").add_argument("name")

    flows = sub.add_parser(
        "workflow",
        help="jobs that wait for each other: submit a workflow file, draw one",
        description="Workflows: jobs named in one file, each running after the jobs its `after` names.",
    )
    flow_sub = flows.add_subparsers(dest="workflow_cmd", required=True, metavar="ACTION")

    def add_flow(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        t = flow_sub.add_parser(name, help=help, description=help, parents=[common])
        t.set_defaults(handler=handler)
        return t

    p = add_flow("submit", commands.workflow_submit, "submit a workflow (YAML or JSON), stored whole")
    p.add_argument("file", help="e.g. pipeline.yaml: name, and jobs (each with a name and maybe after)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the workflow's id")
    _json_flag(p)
    p = add_flow("ls", commands.workflow_ls, "list workflows, newest first")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _json_flag(p)
    p = add_flow("show", commands.workflow_show, "draw a workflow: its jobs by level, states, edges")
    p.add_argument("workflow_id")
    _json_flag(p)

    tokens = sub.add_parser(
        "token", help="API tokens (admin): create, list, revoke", description="API tokens (admin only)"
    )
    token_sub = tokens.add_subparsers(dest="token_cmd", required=True, metavar="ACTION")

    def add_token(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        t = token_sub.add_parser(name, help=help, description=help, parents=[common])
        t.set_defaults(handler=handler)
        return t

    p = add_token("create", commands.token_create, "create a token; prints its secret once")
    p.add_argument("owner", help="who the token acts as")
    p.add_argument("--days", type=float, help="expires after this many days (default: never)")
    p.add_argument("--scope", help="comma-separated, e.g. jobs:submit,jobs:read,jobs:cancel")
    p.add_argument("--admin", action="store_true", help="add the admin scope: every owner's jobs")
    p.add_argument("--note", help="what it is for")
    _json_flag(p)
    p = add_token("list", commands.token_list, "list tokens (never their secrets)")
    p.add_argument("--owner")
    _json_flag(p)
    add_token("revoke", commands.token_revoke, "revoke a token at once").add_argument("token_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:  # everything after `--` is the job's command, never our options
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers the shell's completion request (and exits) when asked
    args = parser.parse_args(argv)
    if getattr(args, "offline", None) is not None:  # needs no gateway
        code: int = args.offline(args)
        return code
    if rest and args.cmd != "submit":
        build_parser().error("only `submit` takes a command after --")
    args.command = rest
    err = commands.console(stderr=True)
    try:
        token = resolve_token(getattr(args, "token", None), warn=lambda m: err.print(m, style="yellow"))
        with JobwireClient(resolve_url(getattr(args, "url", None)), token) as client:
            handler: Handler = args.handler
            return handler(client, args, commands.Output(as_json=wants_json(args)))
    except UsageError as exc:
        return _fail(err, f"error: {exc}", 2)
    except ApiError as exc:
        return _fail(err, _api_message(exc), 2 if exc.status < 500 else 1)
    except ConnectionFailed as exc:
        return _fail(err, f"cannot reach the jobwire gateway at {exc.url}: {exc.reason}", 3)
    except WaitTimeout as exc:
        return _fail(err, str(exc), 1)
    except JobwireError as exc:
        return _fail(err, f"error: {exc}", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`jobwire logs JOB | head`): stop quietly, like cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _api_message(exc: ApiError) -> str:
    text = f"{exc.title} ({exc.status})"
    if exc.detail:
        text += f": {exc.detail}"
    if exc.status == 401:
        text += "\nset JOBWIRE_TOKEN, pass --token, or put the token in ~/.config/jobwire/token (mode 0600)"
    return text


def _fail(err: Console, message: str, status: int) -> int:
    err.print(Text(message, style="red"))
    return status


def completion_script(args: argparse.Namespace) -> int:
    """argcomplete's shell code for ``jobwire``: completes commands, options and choices."""
    print(shellcode(["jobwire"], shell=args.shell))
    return 0


def open_in_browser(client: JobwireClient, args: argparse.Namespace, io: commands.Output) -> int:
    """The dashboard's page of a job the caller can see (a 404 otherwise), in the browser ($BROWSER)."""
    job = client.get(args.job)
    url = commands.page_link(client.base_url, job.id) or f"{client.base_url}/ui#/jobs/{job.id}"
    print(url, flush=True)
    if not args.print and not webbrowser.open(url):
        return _fail(commands.console(stderr=True), "no browser could be started; open the address above", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
