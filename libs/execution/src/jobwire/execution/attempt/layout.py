"""Where one attempt's files live, the same for every backend, and the fixed wrapper script that runs it.

One layout (issue 16). ``<root>/jobs/<job_id>/<attempt>/`` is the job's: progress.json, outputs/,
work/, its script and inputs. The executor's bookkeeping (run.json, state.json, reported, signal, and
a batch job's id and submit marker) is in a tree of its own, ``<root>/.executor/jobs/<job_id>/<attempt>/``,
that a job's account can neither enter nor rename (issue 12: a job never rewrites its exit code or
reads another's log; a container mounts only the job's directory).

One rule places the rest, the wrapper's files (wrapper.sh, pid, exit_code) and the logs: they are
kept by whoever runs the wrapper, where that account can write and the job's cannot reach what it
must not. The executor runs it for a process or a container (:attr:`AttemptDir.started_by_batch`
False): they are with its bookkeeping, and the exit code is the wrapper's file. The batch system runs
it inside a batch job (True), as the job's account under run-as: they are in the job's directory,
where that account writes them, read as its files (never through a link), and the exit code is the
batch system's accounting record, the file only compared with it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

RUN_JSON = "run.json"
WRAPPER = "wrapper.sh"
SCRIPT = "script"
PID = "pid"
#: the named pipes a wrapper's log readers read, where the executor makes them ahead of the launch
#: (:meth:`~..transport.Transport.make_fifos`; elsewhere the wrapper makes its own, ``<stream>.pipe``)
FIFOS = ("stdout.fifo", "stderr.fifo")
EXIT_CODE = "exit_code"
#: the last signal the executor sent the group (a number); KILL means no exit code will follow
SIGNAL = "signal"
STATE = "state.json"
REPORTED = "reported"
#: the executor's own record of the account whose directory the job's is (run-as without root)
ACCOUNT = "account"
#: in the job's directory, the account's: its environment then its argv, each NUL-ended, read by
#: the launcher after ``sudo`` (run-as without root; nothing of it on a command line)
LAUNCH_ARGS = "launch.args"
PROGRESS = "progress.json"
OUTPUTS = "outputs"
WORK = "work"

#: The wrapper never changes: the job's values reach it only as arguments and environment, so no
#: user text is ever parsed as shell. Usage: ``sh wrapper.sh OWN_DIR WORK_DIR LOG_MAX ARGV...`` (OWN_DIR:
#: where the wrapper keeps its files, :attr:`AttemptDir.runner`). Its pid is the group id (it is a session
#: leader); it runs the job in the foreground and writes the exit code atomically. The pid file is
#: written, in place, by the process that then becomes the job, its TERM/INT/HUP back to the default
#: first: the executor signals the group once it reads the pid, and a TERM that reached the wrapper
#: before the job existed was caught there and lost (the job ran on to the KILL). Where the job runs as
#: another account, ARGV starts with the privilege drop (``setpriv``): the wrapper stays the executor's,
#: so the job can neither forge the exit code nor reach OWN_DIR. Trapping TERM/INT/HUP keeps the wrapper
#: alive to record the code when the group is signalled. ``command -p`` uses the default PATH, so a
#: job's PATH cannot break the bookkeeping. It exits with the job's code, which a batch script passes
#: on to the batch system's accounting.
#:
#: With LOG_MAX > 0 each stream reaches its file through a pipe read by ``jw_cap``: ``head -c``, its
#: stdout unbuffered (coreutils' libstdbuf preloaded, as ``stdbuf -o0`` does, without stdbuf's own
#: process), so the log follows the job live: LOG_MAX bytes, then one marker line, then the rest is
#: read and dropped, so a chatty job keeps running and never fills the disk (issue 12). Whether there
#: was more is asked only of a stream that wrote something (an empty log means head met the end), by
#: one ``dd`` of one byte. The readers are the wrapper's (the executor's account) and ignore
#: TERM/INT/HUP so a cancelled job's last words are kept; once the job has ended they get at most 2 s
#: to drain what its leftovers still write. LOG_MAX 0: the streams go to the files directly, uncapped.
#: Where the executor made the pipes ahead (:data:`FIFOS`, the local transport) the wrapper uses them
#: and leaves their removal to it; elsewhere it makes its own and removes them once both ends are open.
#: (Processes per no-op job, ``strace -f``: 14 execs before, 8 with the wrapper's own pipes (sh,
#: mkfifo, two heads, rm, the job, the watchdog's sleep, mv), 6 with the executor's; its CPU per job
#: in a cpuacct cgroup over 1,000 jobs of the local stack, jobs included: 14.2 ms before, 5.6 now.)
LOG_TRUNCATED = "[jobwire: {stream} truncated at {limit} bytes; the rest was discarded]"
WRAPPER_SCRIPT = """\
#!/bin/sh
# jobwire attempt wrapper: fixed text, the job's values arrive only as "$@" and environment.
job_dir=$1
work_dir=$2
log_max=$3
shift 3
jw_cap() {
  if [ -n "$jw_lib" ]; then
    _STDBUF_O=0 LD_PRELOAD=$jw_lib command -p head -c "$log_max" >>"$job_dir/$1"
  elif command -p -v stdbuf >/dev/null 2>&1; then
    PATH=/usr/bin:/bin command -p stdbuf -o0 head -c "$log_max" >>"$job_dir/$1"
  else
    command -p head -c "$log_max" >>"$job_dir/$1"
  fi
  [ -s "$job_dir/$1" ] || return 0
  case $(LC_ALL=C command -p dd bs=1 count=1 2>&1 >/dev/null) in
    1+*)
      printf '\\n[jobwire: %s truncated at %s bytes; the rest was discarded]\\n' "$1" "$log_max" \\
        >>"$job_dir/$1"
      command -p cat >/dev/null
      ;;
  esac
}
exec </dev/null
jw_readers=
case $log_max in
  ''|*[!0-9]*|0) exec >>"$job_dir/stdout" 2>>"$job_dir/stderr" ;;
  *)
    trap '' TERM INT HUP
    for jw_lib in /usr/libexec/coreutils/libstdbuf.so /usr/lib64/coreutils/libstdbuf.so \\
      /usr/lib/coreutils/libstdbuf.so ''; do
      if [ -f "$jw_lib" ]; then break; fi
    done
    if [ -p "$job_dir/stdout.fifo" ] && [ -p "$job_dir/stderr.fifo" ]; then
      jw_pipe=fifo  # made for this launch by the executor, which removes them once the pid is out
    else
      jw_pipe=pipe
      for s in stdout stderr; do  # left by a launch that died before it removed them
        if [ -e "$job_dir/$s.pipe" ] || [ -L "$job_dir/$s.pipe" ]; then
          command -p rm -f "$job_dir/$s.pipe"
        fi
      done
      command -p mkfifo -m 600 "$job_dir/stdout.pipe" "$job_dir/stderr.pipe" || exit 125
    fi
    for s in stdout stderr; do
      (exec <"$job_dir/$s.$jw_pipe" >/dev/null 2>&1; jw_cap "$s") &
      jw_readers="$jw_readers $!"
    done
    exec >"$job_dir/stdout.$jw_pipe" 2>"$job_dir/stderr.$jw_pipe"
    if [ "$jw_pipe" = pipe ]; then  # both ends are open: the names are done
      command -p rm -f "$job_dir/stdout.pipe" "$job_dir/stderr.pipe"
    fi
    ;;
esac
trap 'jobwire_signalled=1' TERM INT HUP
if cd "$work_dir"; then
  unset OLDPWD  # cd set it to where the executor runs: nothing of the executor's reaches the job
  (trap - TERM INT HUP; echo "$$" >"$job_dir/pid" && "$@")
  rc=$?
else
  echo "$$" >"$job_dir/pid"
  printf 'jobwire: cannot enter the working directory %s\\n' "$work_dir" >&2
  rc=126
fi
if [ -n "$jw_readers" ]; then
  exec >/dev/null 2>&1
  trap 'jw_late=1' USR1
  (command -p sleep 2; kill -USR1 $$) &
  jw_dog=$!
  wait $jw_readers
  kill $jw_dog 2>/dev/null
fi
echo "$rc" >"$job_dir/exit_code.tmp" && command -p mv -f "$job_dir/exit_code.tmp" "$job_dir/exit_code"
exit "$rc"
"""


#: The directory below an executor's root that holds the attempts' own files.
OWN_TREE = ".executor"


@dataclass(frozen=True)
class AttemptDir:
    """Paths of one attempt's directory (POSIX, on the machine that holds it, or as the job sees it)."""

    path: str
    #: where the executor's files are (set by :meth:`of`; a bare directory keeps them in ``path``)
    own_dir: str | None = None
    #: whether the batch system, not the executor, runs the wrapper: its files and the logs are then
    #: in the job's directory (see the module's rule)
    started_by_batch: bool = False

    @classmethod
    def of(
        cls, root: str, job_id: str, attempt: int, rank: int = 0, *, started_by_batch: bool = False
    ) -> AttemptDir:
        name = attempt_name(attempt, rank)
        own = posixpath.join(root, OWN_TREE, "jobs", job_id, name)
        return cls(posixpath.join(root, "jobs", job_id, name), own, started_by_batch)

    def at(self, path: str) -> AttemptDir:
        """The same attempt below another path (the directory as a container sees it)."""
        return AttemptDir(path, self.own_dir, self.started_by_batch)

    def file(self, name: str) -> str:
        """A file at the top of the directory (the job's: a script, progress.json)."""
        return posixpath.join(self.path, name)

    @property
    def private(self) -> str:
        """Where the executor's own files are."""
        return self.own_dir if self.own_dir is not None else self.path

    def own(self, name: str) -> str:
        """A file of the executor's own: the job never needs to write it."""
        return posixpath.join(self.private, name)

    @property
    def runner(self) -> str:
        """Where the wrapper keeps its files (its script, pid, exit_code): with the executor's files,
        or in the job's directory where the batch system runs the wrapper."""
        return self.path if self.started_by_batch else self.private

    @property
    def logs(self) -> str:
        """Where the logs are: beside the wrapper's files, which writes them."""
        return self.runner

    def log(self, stream: str) -> str:
        return posixpath.join(self.logs, stream)

    @property
    def work(self) -> str:
        return self.file(WORK)

    @property
    def outputs(self) -> str:
        return self.file(OUTPUTS)

    @property
    def progress(self) -> str:
        return self.file(PROGRESS)

    def dirs(self) -> list[str]:
        """Every directory the attempt needs, parents first."""
        return list(dict.fromkeys([self.path, self.private, self.logs, self.work, self.outputs]))

    def job_dirs(self) -> list[str]:
        """The directories that are the job's own (its account owns them under run-as)."""
        return [self.path, self.work, self.outputs]


def attempt_name(attempt: int, rank: int = 0) -> str:
    """The attempt's directory name: ``3``, or ``3-rank2`` for rank 2 of a gang. The ranks of a gang
    run on nodes that may share one root (an NFS home, one Docker host's shared directory): each
    needs a directory of its own. Rank 0 keeps the job's name: its node is the job's node."""
    return str(attempt) if rank == 0 else f"{attempt}-rank{rank}"


#: what :func:`attempt_name` gives: an attempt number, maybe a rank
ATTEMPT_NAME = re.compile(r"^[0-9]+(-rank[0-9]+)?$(?!\n)")


def rank_subdir(rank: int) -> str:
    """Where rank ``rank`` > 0 of a gang launched inside ONE batch job (SLURM's srun step) keeps its
    wrapper's files (pid, exit_code, logs), below the attempt's: the ranks share one attempt directory
    there, unlike ranks dispatched to nodes of their own (:func:`attempt_name`)."""
    return f"rank{int(rank)}"


def rank_log(stream: str, rank: int) -> str:
    """The name of rank ``rank``'s log ``stream`` relative to the attempt's logs: ``stdout`` for rank
    0 (the job's own), ``rank1/stdout`` for rank 1 of a gang launched inside one batch job."""
    return stream if rank == 0 else f"{rank_subdir(rank)}/{stream}"


#: what :func:`rank_log` gives for a rank > 0
RANK_LOG = re.compile(r"^rank[1-9][0-9]{0,3}/(stdout|stderr)$(?!\n)")

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$(?!\n)")


def check_job_id(job_id: str) -> str:
    """``job_id`` if it can name a directory of its own (no ``/``, no ``..``); ValueError otherwise."""
    if not _JOB_ID.match(job_id):
        raise ValueError(f"{job_id!r} is not a job id")
    return job_id
