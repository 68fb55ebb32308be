"""HTTP for ``/v1/jobs/{id}/files``: the job's directory on its node, while it runs (and after,
until it is deleted), listed or one file read."""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Annotated
from urllib.parse import quote

from litestar import Controller, get
from litestar.params import FromPath, Parameter
from litestar.response import Stream

from ..jobs.lookup import require_job
from ..params import MAX_SEQUENCE, Caller, JobId, Res
from ..problems import InvalidParameter
from .service import FileList, list_files, open_file


class FileController(Controller):
    path = "/v1/jobs/{job_id:str}/files"
    tags = ["files"]

    @get("/", summary="List the files in a job's directory on its node", opt={"scope": "jobs:read"})
    async def list_job_files(
        self,
        res: Res,
        caller: Caller,
        job_id: JobId,
        path: Annotated[str, Parameter(description="a directory below the job's, to list")] = "",
    ) -> FileList:
        job = await require_job(res, job_id, owner=caller.visible_owner)
        return await list_files(res, job, path)

    @get(
        "/{path:path}", summary="Read one file from a job's directory on its node", opt={"scope": "jobs:read"}
    )
    async def read_job_file(
        self,
        res: Res,
        caller: Caller,
        job_id: JobId,
        path: FromPath[str],
        offset: Annotated[int, Parameter(ge=0, le=MAX_SEQUENCE, description="the first byte to send")] = 0,
        limit: Annotated[
            int | None, Parameter(ge=0, le=MAX_SEQUENCE, description="at most this many bytes")
        ] = None,
    ) -> Stream:
        job = await require_job(res, job_id, owner=caller.visible_owner)
        path = path.lstrip("/")
        if not path:
            raise InvalidParameter("name a file: GET /v1/jobs/{id}/files lists the directory")
        download = await open_file(res, job, path, offset, limit)
        filename = posixpath.basename(path)
        headers = {
            "Content-Length": str(download.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        }
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return Stream(download.chunks, media_type=media_type, headers=headers)
