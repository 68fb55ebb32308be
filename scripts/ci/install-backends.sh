#!/usr/bin/env bash
# Install the real backends the integration tests run against. Idempotent: each backend is installed only
# when it is missing. Needs root or sudo (Debian/Ubuntu, apt).
#
#   scripts/ci/install-backends.sh              # every backend
#   scripts/ci/install-backends.sh postgresql   # only the named ones
#
# Add a backend by writing an `install_<name>` function and listing <name> in ALL_BACKENDS.
set -euo pipefail

ALL_BACKENDS=(postgresql docker ssh slurm sge browser prometheus curl)
# Installed only when named: what `make bench` uses and no test needs.
BENCH_ONLY=(bench)

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

install_docker() {
    # A Docker engine for the Docker executor's tests, and the local debian:bookworm base image the
    # test Dockerfiles build FROM (no registry is needed). There is no systemd on CI machines and apt
    # starts no daemons, so dockerd is started by hand when the engine does not answer.
    if ! command -v dockerd >/dev/null 2>&1; then apt_install docker.io; fi
    if ! command -v debootstrap >/dev/null 2>&1; then apt_install debootstrap; fi
    if ! as_root docker info >/dev/null 2>&1; then
        echo "docker: starting dockerd (log: /var/log/dockerd.log)"
        # Every descriptor above 2 closed first: run under `flock /tmp/jobwire-backends.lock`, the
        # daemon inherited the lock's descriptor and held the backends lock for as long as it ran.
        as_root bash -c 'for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done
            nohup dockerd </dev/null >>/var/log/dockerd.log 2>&1 &' 2>/dev/null
        local waited=0
        until as_root docker info >/dev/null 2>&1; do
            if [ "$waited" -ge 60 ]; then
                echo "docker: dockerd did not answer within 30 s; see /var/log/dockerd.log" >&2
                tail -n 20 /var/log/dockerd.log >&2 || true
                exit 1
            fi
            sleep 0.5
            waited=$((waited + 1))
        done
    fi
    echo "docker: engine $(as_root docker version --format '{{.Server.Version}}') is running"
    as_root bash "$(dirname "$0")/build-debian-base.sh"
}

install_ssh() {
    # OpenSSH servers (a jump host and "GPU nodes" in network namespaces) are started by the tests
    # themselves; apt never starts sshd here. Also the tools the test bed uses: ip, nft, unshare, sudo.
    local pkgs=()
    [ -x /usr/sbin/sshd ] || pkgs+=(openssh-server)
    command -v ssh-keygen >/dev/null 2>&1 || pkgs+=(openssh-client)
    command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
    command -v nft >/dev/null 2>&1 || pkgs+=(nftables)
    command -v unshare >/dev/null 2>&1 || pkgs+=(util-linux)
    command -v pgrep >/dev/null 2>&1 || pkgs+=(procps)
    # run-as over SSH: the executor's login starts each job as its account with `sudo -n -u`
    command -v sudo >/dev/null 2>&1 || pkgs+=(sudo)
    if [ "${#pkgs[@]}" -eq 0 ]; then
        echo "ssh: already installed ($(/usr/sbin/sshd -V 2>&1 | head -n1 || true))"
        return
    fi
    apt_install "${pkgs[@]}"
}

install_slurm() {
    # Single-node SLURM 22.05 with accounting (slurmdbd on MariaDB) and slurmrestd. Nothing is
    # configured system-wide: tests/fixtures/slurm.py starts every daemon under a temporary directory.
    local pkgs=()
    command -v slurmctld >/dev/null 2>&1 || pkgs+=(slurm-wlm)
    [ -x /usr/sbin/slurmdbd ] || pkgs+=(slurmdbd)
    [ -x /usr/sbin/slurmrestd ] || pkgs+=(slurmrestd)
    command -v munged >/dev/null 2>&1 || pkgs+=(munge)
    [ -x /usr/sbin/mariadbd ] || pkgs+=(mariadb-server)
    # run-as: the executor submits as each job's account with sudo -n -u (tests write a drop-in)
    [ -x /usr/bin/sudo ] || pkgs+=(sudo)
    if [ "${#pkgs[@]}" -eq 0 ]; then
        echo "slurm: already installed ($(slurmctld -V 2>&1 || true))"
        return
    fi
    apt_install "${pkgs[@]}"
}

install_sge() {
    # Son of Grid Engine 8.1.9 (Debian gridengine). The master's postinst creates the cell for this
    # host; tests/fixtures/sge.py configures and starts qmaster and execd (apt starts no daemons).
    # run-as: the executor submits as each job's account with sudo -n -u (tests write a drop-in)
    [ -x /usr/bin/sudo ] || apt_install sudo
    if [ -x /usr/sbin/sge_qmaster ] && [ -x /usr/sbin/sge_execd ] && [ -e /usr/lib/gridengine/qsub ]; then
        echo "sge: already installed"
        return
    fi
    local host
    host=$(hostname)
    as_root debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string ${host}
EOF
    apt_install gridengine-master gridengine-exec gridengine-client
}

install_browser() {
    # Debian's Chromium for the dashboard's browser tests, driven by Playwright for Python pointed at
    # /usr/bin/chromium (Playwright's own browser download is never used: it needs the Internet).
    if [ -x /usr/bin/chromium ]; then
        echo "browser: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
        return
    fi
    apt_install chromium fonts-dejavu-core
}

install_prometheus() {
    # Debian's Prometheus and promtool: the shipped scrape config and alert rules are checked and run
    # against the real stack (tests/deploy/test_observability.py). apt starts no daemon here.
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        echo "prometheus: already installed ($(prometheus --version 2>&1 | head -n1))"
        return
    fi
    apt_install --no-install-recommends prometheus
}

install_curl() {
    # docs/migrating.md's examples are curl commands, run as written by tests/e2e/test_migrating_docs.py
    if command -v curl >/dev/null 2>&1; then
        echo "curl: already installed"
        return
    fi
    apt_install curl
}

install_bench() {
    # wrk, the HTTP load generator `make bench` drives the gateway and the bare route with (without it
    # the bench falls back to its own asyncio client, which saturates a core sooner)
    if command -v wrk >/dev/null 2>&1; then
        echo "bench: wrk already installed"
        return
    fi
    apt_install wrk
}

main() {
    local backends=("$@")
    if [ "${#backends[@]}" -eq 0 ]; then backends=("${ALL_BACKENDS[@]}"); fi
    for backend in "${backends[@]}"; do
        if ! declare -F "install_${backend}" >/dev/null; then
            echo "unknown backend: ${backend} (known: ${ALL_BACKENDS[*]} ${BENCH_ONLY[*]})" >&2
            exit 2
        fi
        "install_${backend}"
    done
}

main "$@"
