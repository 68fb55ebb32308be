"""Artifacts in the NATS object store (bucket ``jobwire_artifacts``, objects ``<job_id>/<name>``).

Downloads stream the object's chunks straight from its JetStream stream with an ordered consumer, so a
large artifact never sits in the gateway's memory (nats-py's ``ObjectStore.get`` would buffer it whole).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from nats.js.api import ObjectInfo
from nats.js.errors import ObjectNotFoundError

from jobwire.contracts import v1
from jobwire.contracts.v1 import subjects as sj

from ..jetstream import OrderedReader
from ..problems import NotFound
from ..resources import Resources

log = logging.getLogger(__name__)
DIGEST_PREFIX = "SHA-256="
CHUNK_TIMEOUT = 30.0


class ArtifactNotFound(NotFound):
    slug, title = "artifact-not-found", "Artifact not found"


class ArtifactList(msgspec.Struct, kw_only=True):
    items: list[v1.Artifact]


@dataclass
class Download:
    info: ObjectInfo
    chunks: AsyncIterator[bytes]


async def open_artifact(res: Resources, job_id: str, name: str) -> Download:
    """The object's info and an iterator over its bytes; 404 problem when there is no such object."""
    store = await res.bus.artifacts()
    try:
        info = await store.get_info(sj.artifact_object(job_id, name))
    except ObjectNotFoundError:
        raise ArtifactNotFound(f"job {job_id} has no artifact {name!r}") from None
    if info.is_link() or not info.nuid:
        raise ArtifactNotFound(f"artifact {name!r} of job {job_id} is a link, not stored data")
    return Download(info=info, chunks=object_chunks(res, sj.ARTIFACT_BUCKET, info))


async def object_chunks(res: Resources, bucket: str, info: ObjectInfo) -> AsyncIterator[bytes]:
    """The bytes of one object of ``bucket``, chunk by chunk, digest checked before the last goes out."""
    size = info.size or 0
    if size == 0:
        return
    subject = f"$O.{bucket}.C.{info.nuid}"
    digest, sent = hashlib.sha256(), 0
    async with OrderedReader(res.bus.js, f"OBJ_{bucket}", subject) as reader:
        while True:
            msg = await reader.next(CHUNK_TIMEOUT)
            if msg is None:
                raise RuntimeError(f"object {info.name!r}: no chunk for {CHUNK_TIMEOUT} s after {sent} bytes")
            digest.update(msg.data)
            sent += len(msg.data)
            if msg.metadata.num_pending == 0:
                # Checked before the last bytes go out, so a corrupt object never looks complete.
                _check_digest(info, digest.digest())
                yield msg.data
                return
            yield msg.data


def _check_digest(info: ObjectInfo, actual: bytes) -> None:
    expected = (info.digest or "").removeprefix(DIGEST_PREFIX).removeprefix(DIGEST_PREFIX.lower())
    if expected and base64.urlsafe_b64decode(expected + "=" * (-len(expected) % 4)) != actual:
        log.error("object %r: digest mismatch", info.name)
        raise RuntimeError(f"object {info.name!r}: digest mismatch")
