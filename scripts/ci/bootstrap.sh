#!/usr/bin/env bash
# Everything `make test` needs on a fresh Debian machine: uv, the Python dependencies, and the real
# backends the tests talk to. Idempotent: a second run does nothing it does not have to.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV="$(bash scripts/ci/find-uv.sh)"
"$UV" sync --frozen
bash scripts/ci/install-backends.sh
