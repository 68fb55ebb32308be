"""HTTP for ``/v1/programs``: the programs jobs may name, per node, as the executors published them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from jobwire.contracts.v1 import programs as pv

from ..params import Res
from ..problems import ProblemDetails
from . import service


class ProgramList(msgspec.Struct, kw_only=True):
    items: list[pv.ProgramView]


def _filter(what: str) -> QueryParameter:
    return QueryParameter(description=f"Only programs of this {what} (exact match)")


class ProgramController(Controller):
    path = "/v1/programs"
    tags = ["programs"]

    @get(
        "/",
        summary="Programs a job may name as `program: NAME@VERSION`, one entry per node offering it",
        opt={"scope": "jobs:read"},
        responses={
            503: ResponseSpec(
                ProblemDetails,
                description="The catalogs cannot be read from the bus",
                media_type="application/problem+json",
            )
        },
    )
    async def list_programs(
        self,
        res: Res,
        name: Annotated[str | None, _filter("name")] = None,
        version: Annotated[str | None, _filter("version")] = None,
        cluster: Annotated[str | None, _filter("cluster")] = None,
        node: Annotated[str | None, _filter("node")] = None,
    ) -> ProgramList:
        """Sorted by name, then version in natural order (v2 before v10), then cluster and node."""
        items = await service.list_programs(res, name=name, version=version, cluster=cluster, node=node)
        return ProgramList(items=items)
