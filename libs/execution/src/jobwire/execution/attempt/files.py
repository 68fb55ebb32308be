"""One attempt's files, the same for every backend: its directory, run.json, the job's files and
inputs, the loop's journal, the ``reported`` mark, logs, progress and outputs.

A backend launches and watches the attempt; where its files are and how they are read is here, over
whichever transport reaches them (this machine, an SSH node, a cluster's shared storage).
Issue 12's ownership is set in :meth:`AttemptFiles.prepare`: under run-as the job's directory is its
account's, mode 0700, and the executor's files are in a tree of the executor's own, 0700, that the
account cannot enter (:mod:`.layout`). Where the executor is root it writes the job's
directory and then gives it away; where it is not (an SSH node's login account, ``as_account``), the
account makes, writes and reads its own directory through ``sudo`` and the executor never enters it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from jobwire.contracts.v1 import RunJob, codec

from ..accounts import Account
from ..executor import STREAMS, OutputFile, RunHandle, StartRefused
from ..inputs import INPUT_MODE, InputSource, target_in
from ..transport import Transport
from ..transport.confined import PathRefused
from ..transport.sudo import SudoTransport
from . import layout as L

PROGRESS_MAX = 65536
#: the transport that acts as a named account on the attempts' machine (``sudo -n -u``)
AsAccount = Callable[[str], SudoTransport]


@dataclass(frozen=True)
class FileToWrite:
    path: str
    data: bytes
    mode: int = 0o644


def rank_of(run: RunJob) -> int:
    """The run's rank in its gang; 0 for a job on one node."""
    return run.gang.rank if run.gang is not None else 0


class AttemptFiles:
    """Every attempt below ``root`` (``<root>/jobs/<job>/<attempt>``), in the one layout of
    :mod:`.layout`; ``started_by_batch`` where the batch system runs the wrapper (executor-hpc)."""

    def __init__(
        self,
        transport: Transport,
        root: str,
        *,
        started_by_batch: bool = False,
        as_account: AsAccount | None = None,
    ) -> None:
        self.transport = transport
        self.root = root
        self.started_by_batch = started_by_batch
        #: set where the executor cannot give a directory away (not root): the job's directory is then
        #: made, written and read as its account through this
        self.as_account = as_account

    def reach(self, account: str | None) -> Transport:
        """The transport for a job's own directory: the executor's, or, where the executor is not
        root and the job runs as ``account``, that account's (so reads stay within its rights)."""
        if account is None or self.as_account is None:
            return self.transport
        return self.as_account(account)

    async def account_at(self, d: L.AttemptDir) -> str | None:
        """The account recorded for an attempt whose directory is reached as it (None otherwise)."""
        if self.as_account is None:
            return None
        try:
            return (await self.transport.read_file(d.own(L.ACCOUNT))).decode().strip() or None
        except FileNotFoundError:
            return None

    def dir(self, job_id: str, attempt: int, rank: int = 0) -> L.AttemptDir:
        return L.AttemptDir.of(self.root, job_id, attempt, rank, started_by_batch=self.started_by_batch)

    def for_run(self, run: RunJob) -> L.AttemptDir:
        """The directory of this run: of its rank, for a gang's."""
        return self.dir(run.job_id, run.attempt, rank_of(run))

    def of(self, handle: RunHandle) -> L.AttemptDir:
        return self.for_run(handle.run)

    # --- before the launch ------------------------------------------------------------------------

    async def prepare(
        self,
        run: RunJob,
        d: L.AttemptDir,
        files: Sequence[FileToWrite] = (),
        dirs: Iterable[str] = (),
        inputs: InputSource | None = None,
        *,
        required_inputs: bool = True,
        modes: Mapping[str, int] | None = None,
        account: Account | None = None,
    ) -> dict[str, str]:
        """Make the directory, write run.json, the job's own files and its inputs (read-only).

        ``modes`` are set on directories before anything is written in them (run.json holds the job's
        environment: a private directory is 0700 before it is written). Returns the inputs placed
        (name -> path). With ``required_inputs`` a name the owner never uploaded refuses the start;
        without, it is left out (Docker mounts it from shared storage instead).

        With ``account`` (run-as) the job's directory and all in it become that account's, 0700, once
        written: until then only the executor could write there, so nothing in it was planted. The
        executor's files stay its own, 0700, outside the job's directory.
        """
        if account is not None and self.as_account is not None:
            return await self._prepare_as(run, d, files, dirs, inputs, account, required_inputs)
        t = self.transport
        own_modes = {posixpath.join(self.root, L.OWN_TREE): 0o700, d.private: 0o700}
        writes = [(d.own(L.RUN_JSON), codec.encode(run), 0o644), *((f.path, f.data, f.mode) for f in files)]
        await t.write_tree(list(dict.fromkeys([*d.dirs(), *dirs])), {**own_modes, **(modes or {})}, writes)
        taken = {f.path for f in files} | set(dirs)
        placed = await self.place_inputs(run, d, taken, inputs, required_inputs)
        if account is not None:
            await self.give(d, account)
        return placed

    async def _prepare_as(
        self,
        run: RunJob,
        d: L.AttemptDir,
        files: Sequence[FileToWrite],
        dirs: Iterable[str],
        inputs: InputSource | None,
        account: Account,
        required_inputs: bool,
    ) -> dict[str, str]:
        """:meth:`prepare` where the executor is not root: its own files as ever, and the job's
        directory made by the account itself (checked to be its own: ``<root>/jobs`` is sticky and
        open to every account), its files and inputs written as the account."""
        assert self.as_account is not None
        t, jt = self.transport, self.as_account(account.name)
        for path in dict.fromkeys([d.private, d.logs]):
            await t.mkdir(path)
        for path in (posixpath.join(self.root, L.OWN_TREE), d.private):
            await t.chmod(path, 0o700)
        await t.write_file(d.own(L.RUN_JSON), codec.encode(run))
        await t.write_file(d.own(L.ACCOUNT), f"{account.name}\n".encode(), 0o600)
        ours = [f for f in files if f.path.startswith(d.private + "/")]
        for f in ours:
            await t.write_file(f.path, f.data, f.mode)
        below = [p for p in dict.fromkeys([d.work, d.outputs, *dirs]) if p.startswith(d.path + "/")]
        await jt.claim_dirs([posixpath.dirname(d.path), d.path], below)
        theirs = [f for f in files if f not in ours]
        for f in theirs:
            await jt.write_file(f.path, f.data, f.mode)
        taken = {f.path for f in files} | set(dirs)
        return await self.place_inputs(run, d, taken, inputs, required_inputs, jt)

    async def give(self, d: L.AttemptDir, account: Account) -> None:
        """The job's directory to ``account``, 0700; the executor's directories above it 0711 (passable
        whatever the executor's umask, never listable)."""
        if d.private.startswith(d.path + "/") or d.private == d.path:
            raise StartRefused("the executor's files would be inside the job's directory")
        t = self.transport
        await t.give_to(d.path, account.name, str(account.gid))
        for path in d.job_dirs():
            await t.chmod(path, 0o700)
        jobs = posixpath.join(self.root, "jobs")
        for path in (jobs, posixpath.dirname(d.path)):
            await t.chmod(path, 0o711)

    async def place_inputs(
        self,
        run: RunJob,
        d: L.AttemptDir,
        taken: set[str],
        inputs: InputSource | None,
        required: bool = True,
        transport: Transport | None = None,
    ) -> dict[str, str]:
        """The job's named inputs below its work directory, 0444, one at a time (through
        ``transport``: the account's where the executor cannot write there)."""
        t = transport or self.transport
        placed: dict[str, str] = {}
        if not run.spec.inputs:
            return placed
        if inputs is None:
            if not required:
                return placed
            raise StartRefused("this executor has no access to the inputs store")
        for ref in run.spec.inputs:
            target = target_in(d.work, ref)
            if target in taken:
                raise StartRefused(f"input {ref.name!r}: {ref.target!r} is taken by the job's own files")
            data = await inputs.fetch(run.owner, ref) if required else await inputs.get(run.owner, ref)
            if data is None:
                continue
            await t.mkdir(posixpath.dirname(target))
            await t.write_file(target, data, INPUT_MODE)
            placed[ref.name] = target
        return placed

    # --- finding attempts again -------------------------------------------------------------------

    async def listed(self) -> list[str]:
        """Every attempt below the root (for re-adoption after a restart): the directory that holds
        its run.json: the executor's own."""
        jobs = posixpath.join(self.root, L.OWN_TREE, "jobs")
        try:
            entries = await self.transport.list_dir(jobs, depth=2)
        except FileNotFoundError:
            return []
        return [
            posixpath.join(jobs, e.name)
            for e in entries
            if e.kind == "dir" and e.name.count("/") == 1 and L.ATTEMPT_NAME.match(e.name.rsplit("/", 1)[1])
        ]

    async def purge(self, job_id: str) -> None:
        """``<root>/jobs/<job_id>``, every attempt (the job was deleted); the id is checked by the caller.
        A directory made as an account is removed as that account (the ones its attempts recorded)."""
        top = posixpath.join(self.root, "jobs", job_id)
        accounts: list[str] = []
        if self.as_account is not None:
            own = posixpath.join(self.root, L.OWN_TREE, "jobs", job_id)
            try:
                entries = await self.transport.list_dir(own, depth=1)
            except FileNotFoundError:
                entries = []
            for e in entries:
                name = await self.account_at(L.AttemptDir(top, posixpath.join(own, e.name)))
                if e.kind == "dir" and name is not None:
                    accounts.append(name)
        for name in dict.fromkeys(accounts):
            await self.reach(name).remove_tree(top)
        await self.transport.remove_tree(top)
        await self.transport.remove_tree(posixpath.join(self.root, L.OWN_TREE, "jobs", job_id))

    async def read_run(self, path: str) -> RunJob:
        """The RunJob of the attempt :meth:`listed` named ``path`` (its own directory)."""
        return codec.decode(await self.transport.read_file(posixpath.join(path, L.RUN_JSON)), RunJob)

    async def is_reported(self, d: L.AttemptDir) -> bool:
        [probe] = await self.transport.probe([d.private], read=[L.REPORTED])
        return L.REPORTED in probe.files

    # --- what the shared loop reads and keeps -----------------------------------------------------

    async def read_log(self, d: L.AttemptDir, stream: str, offset: int, size: int) -> bytes:
        """A log as written; where the batch job writes it (as the job's account under run-as) read as
        its outputs are, so a log the job swapped for a link to another file is not read. ``stream``:
        ``stdout``, ``stderr``, or a rank's below the attempt's (``rank1/stdout``, ``layout.rank_log``)."""
        if stream not in STREAMS and not L.RANK_LOG.match(stream):
            raise ValueError(f"unknown log stream {stream!r}")
        try:
            if d.started_by_batch:
                data, _ = await self.transport.read_confined(d.logs, stream, offset, size)
                return data
            return await self.transport.read_file(d.log(stream), offset, size)
        except (FileNotFoundError, PathRefused):
            return b""

    async def read_progress(self, d: L.AttemptDir, account: str | None = None) -> bytes | None:
        """The job's progress file, read as its outputs are (never through a link it planted)."""
        try:
            data, _ = await self.reach(account).read_confined(d.path, L.PROGRESS, 0, PROGRESS_MAX + 1)
        except (FileNotFoundError, PathRefused):
            return None
        return data if len(data) <= PROGRESS_MAX else None

    async def list_outputs(self, d: L.AttemptDir, account: str | None = None) -> list[OutputFile]:
        try:
            entries = await self.reach(account).list_dir(d.outputs, depth=None)
        except FileNotFoundError:
            return []
        return [OutputFile(e.name, e.size) for e in entries if e.kind == "file"]

    async def read_output(
        self, d: L.AttemptDir, name: str, offset: int, size: int, account: str | None = None
    ) -> bytes:
        """Read as the job's files are always read (``read_confined``): component by component
        without following a symlink, so one swapped in after the listing is refused (PathRefused),
        regular files only, never through a hard link."""
        data, _ = await self.reach(account).read_confined(d.outputs, name, offset, size)
        return data

    async def load_state(self, d: L.AttemptDir) -> bytes | None:
        try:
            return await self.transport.read_file(d.own(L.STATE))
        except FileNotFoundError:
            return None

    async def save_state(self, d: L.AttemptDir, data: bytes) -> None:
        await self.transport.write_file(d.own(L.STATE), data)

    async def mark_reported(self, d: L.AttemptDir) -> None:
        await self.transport.write_file(d.own(L.REPORTED), b"")
