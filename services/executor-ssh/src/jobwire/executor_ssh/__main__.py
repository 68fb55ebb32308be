"""``jobwire-executor-ssh``: one process serving every node of a nodes file.

Each node gets its own :class:`ExecutorService` (its own consumer, heartbeat and tick loop), so a
node that cannot be reached never holds up the others; one that cannot even start (unreachable,
refused host key) is retried with backoff.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence

from jobwire.execution import ExecutorService, ExecutorSettings, executor_settings
from jobwire.runtime.lifecycle import run_until_signalled
from jobwire.runtime.settings import BusSettings, bus_settings

from . import config as cf
from .executor import SshExecutor

log = logging.getLogger(__name__)
SERVICE_NAME = "jobwire-executor-ssh"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobwire-executor-ssh",
        description="Run jobs on the SSH nodes of a nodes file. Loop settings (heartbeat, tick, kill "
        "grace) come from JOBWIRE_EXECUTOR_*, NATS from JOBWIRE_NATS_URL.",
    )
    p.add_argument("--config", help=f"the nodes file (default ${cf.CONFIG_ENV})")
    p.add_argument("--node", action="append", help="serve only this node (repeatable)")
    p.add_argument("--nats-url", help="NATS servers, comma-separated (default JOBWIRE_NATS_URL)")
    return p


def node_settings(base: ExecutorSettings, node: cf.NodeConfig) -> ExecutorSettings:
    return dataclasses.replace(
        base,
        backend="ssh",
        node=node.name,
        labels={**base.labels, **node.labels},
        pool=node.pool or base.pool,
    )


async def serve_node(
    node: cf.NodeConfig, nodes: cf.NodesFile, base: ExecutorSettings, bus: BusSettings, stop: asyncio.Event
) -> None:
    """Start the node's service, retrying with backoff until it starts or we are told to stop."""
    settings = node_settings(base, node)
    delay = 1.0
    while not stop.is_set():
        executor = SshExecutor(settings, node, nodes.hosts)
        svc = ExecutorService(settings, bus_settings=bus, executor=executor, freeze_heap=True)
        try:
            await svc.start()
        except Exception as e:
            log.error("node %s could not start (%s); trying again in %.0f s", node.name, e, delay)
            with contextlib.suppress(Exception):
                await svc.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(node.reconnect_max, delay * 2)
            continue
        try:
            await stop.wait()
        finally:
            await svc.stop()
        return


async def serve(nodes: cf.NodesFile, base: ExecutorSettings, bus: BusSettings, stop: asyncio.Event) -> None:
    await asyncio.gather(*(serve_node(n, nodes, base, bus, stop) for n in nodes.nodes.values()))


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    nodes = cf.load(args.config or cf.config_path())
    if args.node:
        unknown = set(args.node) - set(nodes.nodes)
        if unknown:
            raise SystemExit(f"not in the nodes file: {', '.join(sorted(unknown))}")
        nodes = cf.NodesFile(nodes={n: nodes.nodes[n] for n in args.node}, hosts=nodes.hosts)
    base = executor_settings(backend="ssh")
    bus = bus_settings()
    if args.nats_url:
        bus.nats_url = args.nats_url

    async def run(stop: asyncio.Event) -> None:
        await serve(nodes, base, bus, stop)

    run_until_signalled(run, SERVICE_NAME)


if __name__ == "__main__":
    main()
