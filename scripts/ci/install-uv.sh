#!/usr/bin/env bash
# Installs uv from PyPI when it is not on PATH (the machine reaches PyPI, not the web installer).
set -euo pipefail
if command -v uv >/dev/null 2>&1; then exit 0; fi
python3 -m pip install --quiet --disable-pip-version-check uv || python3 -m pip install --quiet --user uv
command -v uv >/dev/null 2>&1 || { echo "uv installed but not on PATH (try ~/.local/bin)" >&2; exit 1; }
