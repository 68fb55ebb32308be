#!/usr/bin/env bash
# Prints the path of a usable uv, installing it first when none is on PATH. A fresh Debian machine has
# no uv and may have an empty HOME or a pip that refuses system installs (PEP 668), so uv is installed
# from PyPI with pip --target into this checkout's .jobwire/tools, a place that needs neither.
# Progress goes to stderr; stdout carries only the path (the Makefile reads it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if found="$(command -v uv 2>/dev/null)"; then echo "$found"; exit 0; fi
tools="$root/.jobwire/tools"
if [ ! -x "$tools/bin/uv" ]; then
    echo "uv: not on PATH; installing it from PyPI into $tools" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$tools" uv >&2
fi
"$tools/bin/uv" --version >/dev/null || { echo "uv: $tools/bin/uv does not run" >&2; exit 1; }
echo "$tools/bin/uv"
