"""Node liveness: heartbeats in, node rows out, silent nodes taken down, stale runs stopped.

Heartbeats arrive on core NATS between batches; the tick takes them, loads the rows of the jobs they
mention, and applies them inside the batch's transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nats.aio.msg import Msg

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj
from jobwire.store.models import NodeRow

from .cluster import NodeState
from .core import Core
from .settings import SchedulerSettings
from .txn import Txn

log = logging.getLogger(__name__)
S = v1.JobState
#: a node row's usage figures are written at most this often (state, capacity and GPUs at once)
HEARTBEAT_PERSIST_EVERY = 5.0


class Liveness:
    def __init__(self, settings: SchedulerSettings, core: Core, wake: Callable[[], None]) -> None:
        self.settings = settings
        self.core = core
        self.wake = wake
        self.heartbeats: dict[str, v1.NodeHeartbeat] = {}
        #: the heartbeats taken for the current tick (their jobs' rows are loaded)
        self.beats: dict[str, v1.NodeHeartbeat] = {}
        self.persisted_beat: dict[str, float] = {}
        #: which job held each GPU when last written: a GPU taken or freed shows in GET /v1/nodes at
        #: once, while usage figures alone wait for the periodic write
        self.persisted_gpus: dict[str, list[tuple[int, str | None]]] = {}

    async def on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = v1.decode(msg.data, v1.NodeHeartbeat)
            sj.check_token(beat.node, "node")
        except (ValueError, Exception) as e:
            log.warning("ignored malformed heartbeat on %s: %s", msg.subject, e)
            return
        self.heartbeats[beat.node] = beat
        node = self.core.cluster.nodes.get(beat.node)
        if node is not None:
            node.last_seen = time.monotonic()
        if node is None or not node.up or node.instance != beat.instance:
            self.wake()

    def tick_ids(self) -> set[str]:
        """Jobs this tick's liveness work may touch (on silent nodes, in heartbeats); takes the beats."""
        ids: set[str] = set()
        limit = time.monotonic() - self.settings.node_timeout
        for node in self.core.cluster.nodes.values():
            if node.up and node.last_seen < limit:
                ids |= set(node.queued) | set(node.running)
        self.beats, self.heartbeats = self.heartbeats, {}
        for beat in self.beats.values():
            ids |= {r.job_id for r in beat.running}
        return ids

    async def tick(self, txn: Txn, mono: float) -> None:
        """Apply the taken heartbeats, then take down nodes silent for longer than ``node_timeout``."""
        await self.apply_heartbeats(txn, mono)
        limit = mono - self.settings.node_timeout
        for node in self.core.cluster.nodes.values():
            if node.up and node.last_seen < limit:
                log.warning("node %s missed heartbeats for %.0fs: down", node.name, mono - node.last_seen)
                self.core.node_down(txn, node)
                await self.save_node_state(txn, node.name, "down")

    async def apply_heartbeats(self, txn: Txn, mono: float) -> None:
        beats, self.beats = self.beats, {}
        came_up = False
        cluster = self.core.cluster
        for beat in beats.values():
            node = cluster.nodes.get(beat.node)
            changed = (
                node is None
                or not node.up
                or node.instance != beat.instance
                or node.capacity != beat.capacity
                or node.labels != beat.labels
                or node.pool != beat.pool
            )
            if node is None:
                node = NodeState(name=beat.node, backend=beat.backend, capacity=beat.capacity)
                cluster.nodes[beat.node] = node
            came_up |= not node.up or changed
            node.backend, node.capacity, node.labels, node.pool = (
                beat.backend,
                beat.capacity,
                beat.labels,
                beat.pool,
            )
            node.up, node.instance, node.last_seen = True, beat.instance, mono
            node.down_since = None
            holders = [(g.index, g.job_id) for g in beat.gpus]
            gpus_changed = holders != self.persisted_gpus.get(beat.node, [])
            if (
                changed
                or gpus_changed
                or mono - self.persisted_beat.get(beat.node, 0.0) > HEARTBEAT_PERSIST_EVERY
            ):
                await self.save_node(txn, beat)
                self.persisted_beat[beat.node] = mono
                self.persisted_gpus[beat.node] = holders
            self.reconcile(txn, beat)
        if came_up and cluster.pending:
            # the one moment a pending job may find a node: its row is read now, not on every tick
            await txn.load(set(cluster.pending))
            self.core.node_up(txn)

    def reconcile(self, txn: Txn, beat: v1.NodeHeartbeat) -> None:
        """Runs a node reports that are no longer ours (stale attempts, deleted jobs) are stopped."""
        for ref in beat.running:
            row = txn.rows.get(ref.job_id)
            ranks = self.core.cluster.gang_runs.get(ref.job_id)
            on = row is not None and (
                row.node == beat.node or (ranks is not None and beat.node in ranks.nodes)  # a gang's rank
            )
            current = row is not None and on and row.attempt == ref.attempt
            if current and row is not None and self.core.on_node(row):
                continue
            if current and row is not None and row.state == S.LOST.value:
                pass  # lost then came back with no attempt left: the run is stale
            elif current:
                continue  # finished moments ago; the executor is still reporting it
            if (ref.job_id, ref.attempt) not in self.core.stop_asked:
                log.info(
                    "node %s still runs %s attempt %s: stopping the stale run",
                    beat.node,
                    ref.job_id,
                    ref.attempt,
                )
                self.core.ask_stop(txn, ref.job_id, ref.attempt, beat.node, S.LOST, "stale attempt")

    async def save_node(self, txn: Txn, beat: v1.NodeHeartbeat) -> None:
        row = await txn.session.get(NodeRow, beat.node)
        if row is None:
            row = NodeRow(name=beat.node, registered_at=txn.at)
            txn.session.add(row)
        row.backend, row.pool, row.state = beat.backend, beat.pool, "up"
        row.instance, row.version = beat.instance, beat.version
        row.capacity = v1.encode(beat.capacity)
        row.labels = v1.encode(beat.labels)
        row.gpus = v1.encode(beat.gpus)
        row.last_heartbeat = beat.at

    async def save_node_state(self, txn: Txn, name: str, state: str) -> None:
        row = await txn.session.get(NodeRow, name)
        if row is not None:
            row.state = state
