#!/usr/bin/env bash
# Build the `debian:bookworm` base image locally with debootstrap and `docker import` it, so the project's
# Dockerfiles (FROM debian:bookworm) build unchanged on machines that cannot pull from a registry.
# Does nothing when the image already exists. Needs root (debootstrap), a running Docker engine and
# debootstrap (scripts/ci/install-backends.sh docker installs both).
#
#   scripts/ci/build-debian-base.sh              # debian:bookworm
#   IMAGE=debian:bookworm MIRROR=http://... scripts/ci/build-debian-base.sh
set -euo pipefail

IMAGE=${IMAGE:-debian:bookworm}
SUITE=${SUITE:-bookworm}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image: $IMAGE already present"
    exit 0
fi

# The machine's own Debian mirror (deb822 sources first, then the classic list), else the public one.
if [ -z "${MIRROR:-}" ]; then
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    elif [ -r /etc/apt/sources.list ]; then
        MIRROR=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
    fi
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

work=$(mktemp -d)
cleanup() { as_root rm -rf "$work"; }
trap cleanup EXIT

echo "base image: debootstrap $SUITE from $MIRROR (about a minute)"
as_root debootstrap --variant=minbase --include=python3 "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 40 "$work/debootstrap.log" >&2
    exit 1
}
as_root rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
as_root tar -C "$work/rootfs" -c . | docker import \
    -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' \
    -m "debootstrap --variant=minbase --include=python3 $SUITE $MIRROR" - "$IMAGE" >/dev/null
echo "base image: $IMAGE built ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
