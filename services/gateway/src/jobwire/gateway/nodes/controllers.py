"""HTTP for ``/v1/nodes``: every node with its capacity and load, as the scheduler last stored it."""

from __future__ import annotations

import msgspec
from litestar import Controller, get

from jobwire.contracts import v1
from jobwire.store import queries

from ..params import Res


class NodeList(msgspec.Struct, kw_only=True):
    items: list[v1.NodeView]


class NodeController(Controller):
    path = "/v1/nodes"
    tags = ["nodes"]

    @get("/", summary="Executor nodes", opt={"scope": "jobs:read"})
    async def list_nodes(self, res: Res) -> NodeList:
        async with res.session() as session:
            return NodeList(items=await queries.list_nodes(session))
