"""HTTP for ``/v1/jobs/{id}/artifacts``: the job's list, and one artifact's bytes."""

from __future__ import annotations

import mimetypes
import posixpath
from urllib.parse import quote

from litestar import Controller, get
from litestar.params import FromPath
from litestar.response import Stream

from ..jobs.lookup import require_job
from ..params import Caller, JobId, Res
from .service import ArtifactList, open_artifact


class ArtifactController(Controller):
    path = "/v1/jobs/{job_id:str}/artifacts"
    tags = ["artifacts"]

    @get("/", summary="The artifacts a job left", opt={"scope": "jobs:read"})
    async def list_artifacts(self, res: Res, caller: Caller, job_id: JobId) -> ArtifactList:
        job = await require_job(res, job_id, owner=caller.visible_owner)
        return ArtifactList(items=job.artifacts)

    # No media_type here: a handler's media_type would override the Stream's own (guessed from the name).
    @get("/{name:path}", summary="Download one artifact", opt={"scope": "jobs:read"})
    async def download(self, res: Res, caller: Caller, job_id: JobId, name: FromPath[str]) -> Stream:
        await require_job(res, job_id, owner=caller.visible_owner)
        name = name.lstrip("/")
        download = await open_artifact(res, job_id, name)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        filename = posixpath.basename(name) or "artifact"
        headers = {
            "Content-Length": str(download.info.size or 0),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        }
        if download.info.digest:
            headers["Digest"] = download.info.digest
        return Stream(download.chunks, media_type=media_type, headers=headers)
