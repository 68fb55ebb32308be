"""``GET /v1/whoami``: who the token belongs to and what it may do, so a client (the dashboard) can offer
only the actions the caller's scopes allow. The API still checks every request itself."""

from __future__ import annotations

import msgspec
from litestar import Controller, get

from ..params import Caller


class Identity(msgspec.Struct, kw_only=True):
    owner: str
    scopes: list[str]
    admin: bool


class WhoamiController(Controller):
    path = "/v1/whoami"
    tags = ["tokens"]

    @get("/", summary="The caller's owner name and scopes", opt={"scope": "jobs:read"})
    async def whoami(self, caller: Caller) -> Identity:
        return Identity(owner=caller.owner, scopes=sorted(caller.scopes), admin=caller.is_admin)
