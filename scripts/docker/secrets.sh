#!/usr/bin/env bash
# Generate every secret `docker compose up` needs into $JOBWIRE_SECRETS_DIR (default deploy/secrets,
# git-ignored): NATS users + passwords (one per service and executor node, plus `observer`), the
# PostgreSQL password, the database URL that holds it, and one shared API key for the gateway.
# Existing files are kept, so running it again only adds what is missing (e.g. a new executor node).
#
#   scripts/docker/secrets.sh                      # nodes from JOBWIRE_EXECUTOR_NODES (docker-1 ssh-1 hpc-1)
#   JOBWIRE_EXECUTOR_NODES="docker-1 docker-2" scripts/docker/secrets.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${JOBWIRE_SECRETS_DIR:-deploy/secrets}
PY=${PYTHON:-.venv/bin/python}
umask 077
mkdir -p "$dir"
args=()
for n in ${JOBWIRE_EXECUTOR_NODES:-docker-1 ssh-1 hpc-1}; do args+=(--executor "$n"); done
"$PY" -m jobwire.runtime.natsauth "$dir" "${args[@]}" >/dev/null
new() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
[ -s "$dir/postgres.password" ] || new > "$dir/postgres.password"
[ -s "$dir/database-url" ] || printf 'postgresql+asyncpg://jobwire:%s@postgres:5432/jobwire\n' \
    "$(cat "$dir/postgres.password")" > "$dir/database-url"
# slurm-rest's JWT (profile hpc with JOBWIRE_HPC_SCHEDULER=slurm-rest): put it here (`scontrol token`)
[ -e "$dir/slurm-rest.token" ] || : > "$dir/slurm-rest.token"
# Prometheus's token for the gateway's /metrics (profile observability): `jobwire token create prometheus
# --scope metrics:read` once the stack runs, written here; empty until then (the gateway answers 401)
[ -e "$dir/metrics.token" ] || : > "$dir/metrics.token"
[ -s "$dir/api-keys" ] || printf 'team %s\n' "$(new)" > "$dir/api-keys"
# Containers run as other users than the one running this script: the files must be readable by them
# (compose bind-mounts secrets as they are). Keep the directory itself private.
chmod 0644 "$dir"/*
chmod 0700 "$dir"
echo "secrets in $dir"
