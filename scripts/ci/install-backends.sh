#!/usr/bin/env bash
# Install the real backends the integration tests run against. Idempotent: each backend is installed only
# when it is missing. Needs root or sudo (Debian/Ubuntu, apt).
#
#   scripts/ci/install-backends.sh              # every backend
#   scripts/ci/install-backends.sh postgresql   # only the named ones
#
# Add a backend by writing an `install_<name>` function and listing <name> in ALL_BACKENDS.
set -euo pipefail

ALL_BACKENDS=(postgresql)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

install_postgresql() {
    # The tests start their own throwaway cluster with these binaries; no service is configured.
    if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        echo "postgresql: already installed ($(compgen -G "/usr/lib/postgresql/*/bin/initdb" | head -n1))"
        return
    fi
    apt_install postgresql
}

main() {
    local backends=("$@")
    if [ "${#backends[@]}" -eq 0 ]; then backends=("${ALL_BACKENDS[@]}"); fi
    for backend in "${backends[@]}"; do
        if ! declare -F "install_${backend}" >/dev/null; then
            echo "unknown backend: ${backend} (known: ${ALL_BACKENDS[*]})" >&2
            exit 2
        fi
        "install_${backend}"
    done
}

main "$@"
