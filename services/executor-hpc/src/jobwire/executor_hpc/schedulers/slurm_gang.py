"""A gang inside one SLURM batch job: ``srun`` starts one rank per node, each with jobwire's rank
variables (issue 14), and the first rank that fails ends the job with its name.

Everything here is fixed text or a checked path or number (issue 12): each rank's command and
environment are data in its own :data:`ARGS_FILE` (rank 0's in the attempt directory, rank R's in
``rankR/``), written by the executor with ``RANK``, ``WORLD_SIZE`` and ``MASTER_PORT`` for that
rank. What only the allocation knows, its hosts, the fixed launcher adds as each rank starts:
``JOBWIRE_HOSTS`` is the address (``NodeAddr``: the node's name unless slurm.conf gives another) of
each node of ``scontrol show hostnames $SLURM_JOB_NODELIST``, in that order, and ``MASTER_ADDR`` the
first (where rank 0 runs: ``srun --ntasks-per-node=1`` gives ranks to nodes in list order).
Rank R's wrapper keeps its pid, logs and exit code in ``rankR/``, so the ranks do not write over
each other on shared storage; rank 0's are the job's own.
"""

from __future__ import annotations

import math
import posixpath
import shlex

from jobwire.contracts.v1.gang import master_port
from jobwire.execution.attempt import layout as L
from jobwire.execution.executor import StartRefused
from jobwire.execution.hpc import BatchRequest
from jobwire.execution.hpc.base import ARGS_FILE, encode_args
from jobwire.execution.hpc.values import check_path

#: in the attempt directory: why the gang failed ("rank 1 exited with code 3 ..."), the job's reason
GANG_REASON = "gang_reason"

#: Runs once per rank (``bash -c`` under srun): picks the rank's args file by ``SLURM_PROCID``, reads
#: it as :data:`~jobwire.execution.hpc.base.LAUNCH` does (NUL-ended items, never parsed as shell),
#: and puts the allocation's hosts after the file's variables, before its argv (an argv's first word
#: never holds ``=``), so nothing in the job's own env overrides them.
RANK_LAUNCH = (
    'jw_d=$1; jw_r=${SLURM_PROCID:?}; jw_f="$jw_d/rank$jw_r/batch.args"; '
    'if [ "$jw_r" = 0 ]; then jw_f="$jw_d/batch.args"; fi; '
    '[ -r "$jw_f" ] || { echo "jobwire: rank $jw_r has no $jw_f" >&2; exit 125; }; '
    "declare -A jw_n; while IFS= read -r jw_x; do jw_y=${jw_x#NodeName=}; jw_y=${jw_y%% *}; "
    'if [[ $jw_x == *" NodeAddr="* ]]; then jw_z=${jw_x#* NodeAddr=}; jw_n[$jw_y]=${jw_z%% *}; fi; done '
    '< <(scontrol -o show node "$SLURM_JOB_NODELIST"); '
    'jw_h=(); while IFS= read -r jw_x; do if [ -n "$jw_x" ]; then jw_h+=("${jw_n[$jw_x]:-$jw_x}"); fi; done '
    '< <(scontrol show hostnames "$SLURM_JOB_NODELIST"); '
    'if [ "${#jw_h[@]}" = 0 ]; then jw_h=("${SLURMD_NODENAME:-$(hostname)}"); fi; '
    'jw_hosts=$(IFS=,; echo "${jw_h[*]}"); '
    'jw_a=(); while IFS= read -r -d "" jw_x; do jw_a+=("$jw_x"); done <"$jw_f"; '
    'jw_k=0; while [ "$jw_k" -lt "${#jw_a[@]}" ] && [[ ${jw_a[$jw_k]} == *=* ]]; '
    "do jw_k=$((jw_k + 1)); done; "
    'exec /usr/bin/env "${jw_a[@]:0:jw_k}" "MASTER_ADDR=${jw_h[0]}" "JOBWIRE_MASTER_ADDR=${jw_h[0]}" '
    '"JOBWIRE_HOSTS=$jw_hosts" "${jw_a[@]:jw_k}"'
)


def rank_dir(job_dir: str, rank: int) -> str:
    """Where rank ``rank``'s wrapper keeps its files: the attempt directory itself for rank 0."""
    return job_dir if rank == 0 else posixpath.join(job_dir, f"rank{rank}")


def rank_env(req: BatchRequest, rank: int) -> dict[str, str]:
    """The rank variables the executor knows before the job starts (the hosts are the allocation's)."""
    base = {
        "RANK": str(rank),
        "WORLD_SIZE": str(req.ranks),
        "MASTER_PORT": str(master_port(req.job_id, req.attempt)),
    }
    return {**base, **{f"JOBWIRE_{k}": v for k, v in base.items()}}


def rank_argv(req: BatchRequest, rank: int) -> list[str]:
    """The wrapper's argv for ``rank``: its OWN_DIR (the third word) moved to the rank's directory."""
    argv = list(req.argv)
    if len(argv) < 3 or argv[2] != req.job_dir:
        raise StartRefused("a SLURM gang needs the attempt wrapper (sh wrapper.sh OWN_DIR ...) to run it")
    argv[2] = rank_dir(req.job_dir, rank)
    return argv


def rank_files(req: BatchRequest) -> dict[str, bytes]:
    """Each rank's :data:`ARGS_FILE`, by name in the attempt directory (``rank1/batch.args``)."""
    files = {}
    for rank in range(req.ranks):
        name = ARGS_FILE if rank == 0 else posixpath.join(f"rank{rank}", ARGS_FILE)
        files[name] = encode_args({**req.env, **rank_env(req, rank)}, rank_argv(req, rank))
    return files


def gang_tail(req: BatchRequest, with_setup: bool, srun: str, setup_file: str) -> str:
    """The fixed end of a gang's batch script: one ``srun`` step of ``req.ranks`` tasks, one per
    node (``--kill-on-bad-exit``: one rank failing stops the others), then the gang's result: the
    lowest rank that failed on its own, else the first to end of those ended by a signal (143/137,
    by their exit_code files' times: a rank killed from outside ends before srun stops the others,
    whose wrappers srun may kill before they record anything), else the lowest that left no exit
    code (its node lost); its code as the job's exit code and ``rank R exited with code C`` as its
    reason."""
    d = check_path("job directory", req.job_dir)
    n = int(req.ranks)
    cpus = max(1, math.ceil(req.spec.resources.cpus))
    q = shlex.quote
    step = [
        srun,
        f"--nodes={n}",
        f"--ntasks={n}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={cpus}",
        "--kill-on-bad-exit=1",
        "/bin/bash",
        "-c",
        RANK_LAUNCH,
        "jobwire-gang",
        d,
    ]
    exit_file, reason_file = posixpath.join(d, L.EXIT_CODE), posixpath.join(d, GANG_REASON)
    lines = ["# jobwire: fixed text; each rank's command and environment are data in its " + ARGS_FILE]
    if with_setup:
        lines.append(f". {q(posixpath.join(d, setup_file))}")
    lines += [
        " ".join(q(w) for w in step),
        "jw_srun=$?",
        "jw_rank=; jw_rc=; jw_stop=; jw_stopc=; jw_stopf=; jw_lost=; jw_seen=",
        "jw_r=0",
        f'while [ "$jw_r" -lt {n} ]; do',
        f'  if [ "$jw_r" = 0 ]; then jw_f={q(exit_file)}; else jw_f={q(d)}/rank$jw_r/{L.EXIT_CODE}; fi',
        '  jw_c=$(cat "$jw_f" 2>/dev/null)',
        '  if [ -n "$jw_c" ]; then jw_seen=1; fi',
        '  case "$jw_c" in',
        "    0) ;;",
        '    "") if [ -z "$jw_lost" ]; then jw_lost=$jw_r; fi ;;',
        '    143|137) if [ -z "$jw_stop" ] || [ "$jw_f" -ot "$jw_stopf" ]; then',
        "      jw_stop=$jw_r; jw_stopc=$jw_c; jw_stopf=$jw_f",
        "    fi ;;",
        '    *) if [ -z "$jw_rank" ]; then jw_rank=$jw_r; jw_rc=$jw_c; fi ;;',
        "  esac",
        "  jw_r=$((jw_r + 1))",
        "done",
        'if [ -z "$jw_rank" ] && [ -n "$jw_stop" ]; then jw_rank=$jw_stop; jw_rc=$jw_stopc; fi',
        'if [ -z "$jw_rank" ] && [ -n "$jw_seen" ] && [ -n "$jw_lost" ]; then jw_rank=$jw_lost; fi',
        'if [ -n "$jw_rank" ] && [ -n "$jw_rc" ]; then',
        '  jw_why="rank $jw_rank exited with code $jw_rc; srun stopped the other ranks"',
        'elif [ -n "$jw_rank" ]; then',
        '  jw_why="rank $jw_rank ended without an exit code (killed, or its node was lost)"; jw_rc=1',
        'elif [ "$jw_srun" != 0 ]; then',
        '  jw_why="srun could not run the ranks (exit code $jw_srun)"; jw_rc=$jw_srun',
        "else",
        "  exit 0",
        "fi",
        'echo "jobwire: $jw_why" >&2',
        f'echo "$jw_why" >{q(reason_file + ".tmp")} && mv -f {q(reason_file + ".tmp")} {q(reason_file)}',
        f'echo "$jw_rc" >{q(exit_file + ".tmp")} && mv -f {q(exit_file + ".tmp")} {q(exit_file)}',
        'exit "$jw_rc"',
    ]
    return "\n".join(lines) + "\n"
