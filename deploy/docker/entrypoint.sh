#!/bin/sh
# Secrets arrive as files (compose secrets). For every SECRET_<VAR>=<file> set, export <VAR> with the
# file's content, so no secret is in the image, the compose file or `docker inspect`.
set -eu
for name in $(env | sed -n 's/^SECRET_\([A-Z][A-Z0-9_]*\)=.*/\1/p'); do
    eval "file=\${SECRET_${name}}"
    value=$(cat "$file")
    export "$name=$value"
    unset "SECRET_${name}"
done
exec "$@"
