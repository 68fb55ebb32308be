"""Named inputs (``PUT /v1/inputs/{name}``) for a job: fetched from the object store by the executor and
placed below the attempt's working directory before the job starts.

The object is ``<owner>/<name>`` (the job's owner, from its RunJob), so a job sees only its owner's
inputs. A missing input fails the run at once: the job would only fail later, less clearly.
"""

from __future__ import annotations

import posixpath

from nats.js.errors import NotFoundError

from jobwire.contracts.v1 import InputRef, check_input_name, check_input_path
from jobwire.contracts.v1 import subjects as sj
from jobwire.runtime.bus import Bus

from .executor import StartRefused

#: What an input file is made: readable by the job, writable by nobody (the store's copy is the truth).
INPUT_MODE = 0o444


class InputSource:
    """Reads inputs from the bus's object store; the service gives one to its executor once connected."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def get(self, owner: str, ref: InputRef) -> bytes | None:
        """The input's bytes, or None when the owner has no input of that name."""
        name = check_or_refuse(ref)
        try:
            store = await self._bus.inputs()
            result = await store.get(sj.input_object(owner, name))
        except NotFoundError:
            return None
        return result.data or b""

    async def fetch(self, owner: str, ref: InputRef) -> bytes:
        """The input's bytes; StartRefused when the owner has no input of that name."""
        data = await self.get(owner, ref)
        if data is None:
            raise StartRefused(f"input {ref.name!r} not found (upload it with PUT /v1/inputs/{ref.name})")
        return data


def check_or_refuse(ref: InputRef) -> str:
    """The reference's name, checked again here: an executor trusts no message it is sent."""
    try:
        check_input_path(ref.target)
        return check_input_name(ref.name)
    except ValueError as e:
        raise StartRefused(str(e)) from None


def target_in(work: str, ref: InputRef) -> str:
    """Where ``ref`` goes below ``work``; by construction (a relative path without ``..``) it cannot
    leave it, and the normalised result is checked once more."""
    check_or_refuse(ref)
    path = posixpath.normpath(posixpath.join(work, ref.target))
    if not path.startswith(work.rstrip("/") + "/"):
        raise StartRefused(f"input {ref.name!r}: path {ref.target!r} leaves the working directory")
    return path
