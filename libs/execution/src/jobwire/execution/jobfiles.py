"""Answering ``jobwire.files.<node>``: a job's directory listed or read for the gateway.

The executor knows where each attempt's directory is (its backend says, :meth:`Executor.job_files`);
the transport walks the job's path without following symlinks (:mod:`.transport.confined`).
"""

from __future__ import annotations

import logging

from jobwire.contracts.v1.files import CHUNK_MAX, LIST_MAX, FilesReply, FilesRequest

from .executor import Executor
from .transport import TransportError
from .transport.confined import NotRegular, PathRefused

log = logging.getLogger(__name__)


async def answer(executor: Executor, req: FilesRequest) -> FilesReply:
    """A listing or one chunk, or the status and reason why not (never an exception)."""
    try:
        found = await executor.job_files(req.job_id, req.attempt)
    except ValueError as e:
        return FilesReply(status=400, error=str(e))
    except (TransportError, OSError) as e:
        return FilesReply(status=503, error=f"the node could not find attempt {req.attempt}: {e}")
    if found is None:
        return FilesReply(status=501, error=f"the {executor.backend} backend cannot show a job's files")
    transport, root = found
    where = f"attempt {req.attempt} of job {req.job_id}"
    try:
        if req.read:
            size = max(0, min(req.size, CHUNK_MAX))
            data, total = await transport.read_confined(root, req.path, req.offset, size)
            return FilesReply(data=data, size=total)
        entries, left = await transport.list_confined(root, req.path, LIST_MAX)
        return FilesReply(entries=entries, truncated=left)
    except NotRegular as e:
        return FilesReply(status=409, error=str(e))
    except PathRefused as e:
        return FilesReply(status=400, error=str(e))
    except FileNotFoundError:
        what = f"{req.path!r} in" if req.path else "the directory of"
        return FilesReply(status=404, error=f"there is no {what} {where} on this node")
    except NotImplementedError as e:
        return FilesReply(status=501, error=str(e))
    except (TransportError, OSError) as e:
        log.warning("reading %r of %s failed: %s", req.path, where, e)
        return FilesReply(status=503, error=f"the node could not read {req.path!r}: {e}")
