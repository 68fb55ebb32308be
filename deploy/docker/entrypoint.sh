#!/bin/sh
# Secrets arrive as files (compose secrets). For every SECRET_<VAR>=<file> set, export <VAR> with the
# file's content, so no secret is in the image, the compose file or `docker inspect`. Without a
# command, run the image's own service (JOBWIRE_SERVICE, the Dockerfile's SERVICE build argument).
set -eu
for name in $(env | sed -n 's/^SECRET_\([A-Z][A-Z0-9_]*\)=.*/\1/p'); do
    eval "file=\${SECRET_${name}}"
    value=$(cat "$file")
    export "$name=$value"
    unset "SECRET_${name}"
done
if [ "$#" -eq 0 ]; then
    case "${JOBWIRE_SERVICE:-}" in
        gateway | scheduler) set -- "jobwire-${JOBWIRE_SERVICE}" ;;
        executor-docker | executor-ssh | executor-hpc) set -- jobwire-executor --backend "${JOBWIRE_SERVICE#executor-}" ;;
        *)
            echo "jobwire-entrypoint: no command given, and JOBWIRE_SERVICE='${JOBWIRE_SERVICE:-}' names no service" >&2
            exit 64
            ;;
    esac
fi
exec "$@"
