#!/usr/bin/env bash
# Rehearses a new user's first run on this machine, the way it fails on a fresh one: a fresh clone of the
# committed tree, an empty HOME, no uv on PATH, and SGE with no execd spool (as before execd ever ran).
# Then the README's two commands must work the first time: `make test`'s setup (uv, Python deps, the
# backends, and SGE brought up from the empty spool as the test fixture does) and `make run` until /ready,
# stopped by SIGTERM. CI runs this before `make test` so a used machine cannot hide a first-run failure.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/jobwire-first-run.XXXXXX)"
stack_pid=""
cleanup() {
    if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then kill -TERM -- "-$stack_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
say() { echo "first-run: $*"; }

system_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if found="$(PATH=$system_path command -v uv)"; then
    echo "first-run: uv is installed system-wide ($found); remove it to rehearse a machine without uv" >&2
    exit 1
fi
mkdir -p "$work/home"
git clone --quiet "$repo" "$work/jobwire"
cd "$work/jobwire"
# The machine's environment (its CA bundle settings, say) stays; only HOME, PATH and XDG dirs are new.
fresh=(env -u PYENV_ROOT -u XDG_CONFIG_HOME -u XDG_CACHE_HOME -u XDG_DATA_HOME -u VIRTUAL_ENV
    HOME="$work/home" PATH="$system_path")

if [ -x /usr/sbin/sge_execd ]; then
    # A machine where execd never ran has no spool dir; stop SGE's daemons and remove it.
    pkill -x sge_execd 2>/dev/null || true
    pkill -x sge_qmaster 2>/dev/null || true
    for _ in $(seq 100); do { pgrep -x sge_execd || pgrep -x sge_qmaster; } >/dev/null || break; sleep 0.2; done
    # the package's postinst leaves an empty execd dir; execd makes <host>/ (with execd.pid) when first run
    rm -rf /var/spool/gridengine/execd/*
    say "SGE stopped and its execd spool emptied"
fi

say "make setup (fresh clone, empty HOME, no uv)"
started=$SECONDS
"${fresh[@]}" make setup > "$work/setup.log" 2>&1 || { tail -n 40 "$work/setup.log" >&2; say "make setup FAILED"; exit 1; }
say "make setup passed in $((SECONDS - started)) s"

say "SGE from an empty spool (tests/fixtures/sge-up.sh, as the test fixture starts it)"
pids="$("${fresh[@]}" bash tests/fixtures/sge-up.sh)" || { say "sge-up.sh FAILED from an empty spool"; exit 1; }
read -r qmaster execd <<<"$pids"
kill -0 "$qmaster" && kill -0 "$execd" || { say "SGE daemons not running after sge-up.sh"; exit 1; }
kill "$execd" "$qmaster" 2>/dev/null || true
say "SGE came up from an empty spool (qmaster $qmaster, execd $execd), stopped again"

ready() { python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$api/ready" 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port); nats=$(free_port); mon=$(free_port)
say "make run (API on :$api) until /ready"
rm -rf .jobwire/tools  # make setup left a uv here: make run must also find or install its own
setsid "${fresh[@]}" JOBWIRE_GATEWAY_PORT="$api" JOBWIRE_NATS_PORT="$nats" JOBWIRE_NATS_MONITOR_PORT="$mon" \
    make run > "$work/run.log" 2>&1 &
stack_pid=$!
for _ in $(seq 600); do
    if ready; then break; fi
    kill -0 "$stack_pid" 2>/dev/null || { tail -n 40 "$work/run.log" >&2; say "make run exited before /ready"; exit 1; }
    sleep 0.2
done
ready || { tail -n 40 "$work/run.log" >&2; say "make run not ready in 120 s"; exit 1; }
say "make run is ready"
kill -TERM -- "-$stack_pid"
for _ in $(seq 150); do kill -0 "$stack_pid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$stack_pid" 2>/dev/null; then say "make run did not stop within 30 s of SIGTERM"; exit 1; fi
stack_pid=""
say "passed: setup and make run work the first time"
