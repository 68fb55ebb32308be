"""``jobwire-executor``: run one node's executor until SIGTERM/SIGINT (jobs keep running after)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from jobwire.runtime.lifecycle import run_until_signalled
from jobwire.runtime.settings import BusSettings, bus_settings

from .service import SERVICE_NAME, ExecutorService
from .settings import ENV_PREFIX, ExecutorSettings, executor_settings


def _label(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"labels look like KEY=VALUE, not {raw!r}")
    return key.strip(), value.strip()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobwire-executor",
        description=f"Run jobs for one jobwire node. Every flag has an {ENV_PREFIX}<FLAG> variable; "
        "NATS is set with JOBWIRE_NATS_URL and friends.",
    )
    p.add_argument("--backend", help="executor plugin (entry point in jobwire.executors; default local)")
    p.add_argument("--node", help="node name (default: this host's short name)")
    p.add_argument("--root", help="directory for attempt directories (default ./.jobwire/executor/<node>)")
    p.add_argument("--slots", type=int, help="jobs at once (default: CPU count)")
    p.add_argument("--cpus", type=float, help="CPUs offered (default: CPU count)")
    p.add_argument("--memory", help="memory offered, bytes or 64G (default: MemTotal)")
    p.add_argument("--gpus", type=int, help="GPUs offered (default 0)")
    p.add_argument("--label", action="append", type=_label, default=None, help="KEY=VALUE, repeatable")
    p.add_argument("--pool", help="pool this node belongs to")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats (default 2)")
    p.add_argument("--tick-interval", type=float, help="seconds between polls of the runs (default 0.25)")
    p.add_argument("--artifact-max-bytes", type=int, help="upload cap per attempt (default 1 GiB)")
    p.add_argument("--kill-grace", type=float, help="seconds from TERM to KILL on a timeout (default 10)")
    p.add_argument("--nats-url", help="NATS servers, comma-separated (default JOBWIRE_NATS_URL)")
    p.add_argument("--no-declare", action="store_true", help="do not create or update streams and buckets")
    return p


def settings_from(argv: Sequence[str] | None = None) -> tuple[ExecutorSettings, BusSettings]:
    """Environment first, flags on top."""
    a = parser().parse_args(argv)
    settings = executor_settings(
        backend=a.backend,
        node=a.node,
        root=a.root,
        slots=a.slots,
        cpus=a.cpus,
        memory=a.memory,
        gpus=a.gpus,
        labels=dict(a.label) if a.label else None,
        pool=a.pool,
        heartbeat_interval=a.heartbeat_interval,
        tick_interval=a.tick_interval,
        artifact_max_bytes=a.artifact_max_bytes,
        kill_grace=a.kill_grace,
        declare=False if a.no_declare else None,
    )
    bus = bus_settings()
    if a.nats_url:
        bus.nats_url = a.nats_url
    return settings, bus


def main(argv: Sequence[str] | None = None) -> None:
    settings, bus = settings_from(argv)
    service = ExecutorService(settings, bus_settings=bus, freeze_heap=True)

    async def serve(stop: asyncio.Event) -> None:
        await service.run(stop)

    run_until_signalled(serve, SERVICE_NAME)


if __name__ == "__main__":
    main()
