"""Pieces without a bus: chunking, settings, plugin loading, the local transport."""

from __future__ import annotations

import os
import signal
import stat
import sys

import pytest

from jobwire.contracts.v1 import LogChunk, codec
from jobwire.execution import ExecutorSettings, default_node_name, executor_settings, load_executor
from jobwire.execution.__main__ import settings_from
from jobwire.execution.journal import LogCursor
from jobwire.execution.local import LocalExecutor, memory_total
from jobwire.execution.logpump import MAX_MESSAGE, StreamPump, utf8_cut
from jobwire.execution.transport import TransportTimeout, load_transport
from jobwire.execution.transport.local import LocalTransport


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "cut"),
    [
        (b"abc", 3),
        ("é".encode(), 2),
        ("é".encode()[:1], 0),
        (b"a" + "€".encode()[:2], 1),
        (b"a" + "😀".encode()[:3], 1),
        (b"a" + "😀".encode(), 5),
        (b"\xff\xfe", 2),  # invalid bytes are not waited on
    ],
)
def test_utf8_cut(data, cut):
    assert utf8_cut(data) == cut


class FakeLog:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent: list[tuple[str, LogChunk]] = []
        self.saves = 0

    async def read(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        self.sent.append((msg_id, codec.decode(payload, LogChunk)))

    async def save(self) -> None:
        self.saves += 1


@pytest.mark.unit
async def test_pump_waits_for_a_split_character_and_resends_the_journaled_chunk():
    log = FakeLog("ab€".encode()[:4])
    cursor = LogCursor()
    pump = StreamPump("job", 1, "stdout", cursor)
    await pump.pump(len(log.data), log.read, log.publish, log.save, final=False, limit=10)
    assert [c.data for _, c in log.sent] == ["ab"] and cursor.offset == 2

    log.data = "ab€!".encode()
    # a crash after journaling [2, 6) but before publishing: the restart sends exactly that chunk again
    cursor.pending = 6
    resumed = StreamPump("job", 1, "stdout", cursor)
    await resumed.pump(len(log.data), log.read, log.publish, log.save, final=True, limit=10)
    assert [(i, c.data) for i, c in log.sent] == [("job:1:stdout:0", "ab"), ("job:1:stdout:2", "€!")]
    await resumed.eof(log.publish)
    assert log.sent[-1] == (
        "job:1:stdout:6",
        LogChunk(job_id="job", attempt=1, stream="stdout", offset=6, eof=True),
    )


@pytest.mark.unit
async def test_pump_keeps_messages_under_64k_even_when_json_escapes_grow_them():
    log = FakeLog(b"\x01" * 200_000)  # each byte becomes a 6-character JSON escape
    pump = StreamPump("job", 1, "stderr", LogCursor())
    sent = await pump.pump(len(log.data), log.read, log.publish, log.save, final=True, limit=1000)
    assert sent == len(log.sent) > 1
    assert all(len(codec.encode(c)) <= MAX_MESSAGE for _, c in log.sent)
    assert "".join(c.data for _, c in log.sent) == "\x01" * 200_000


@pytest.mark.unit
def test_settings_env_then_flags(monkeypatch):
    monkeypatch.setenv("JOBWIRE_EXECUTOR_NODE", "from-env")
    monkeypatch.setenv("JOBWIRE_EXECUTOR_SLOTS", "3")
    monkeypatch.setenv("JOBWIRE_EXECUTOR_LABELS", "gpu=a100,zone=b")
    monkeypatch.setenv("JOBWIRE_NATS_URL", "nats://env:4222")
    s, bus = settings_from(["--node", "from-flag", "--label", "x=1", "--tick-interval", "0.1"])
    assert (s.node, s.slots, s.labels, s.tick_interval) == ("from-flag", 3, {"x": "1"}, 0.1)
    assert bus.nats_url == "nats://env:4222"
    assert executor_settings().labels == {"gpu": "a100", "zone": "b"}
    assert ExecutorSettings(node="n").root_dir() == os.path.join(".jobwire", "executor", "n")


@pytest.mark.unit
def test_default_node_name_is_a_subject_token():
    assert default_node_name("gpu01.lab.example.org") == "gpu01"
    assert default_node_name("my host!") == "my-host"


@pytest.mark.unit
def test_plugins_load_from_entry_points_and_are_checked(monkeypatch):
    assert load_executor("local") is LocalExecutor
    assert load_transport("local") is LocalTransport
    with pytest.raises(LookupError, match="no executor backend 'nope'"):
        load_executor("nope")

    class EP:
        name = "bad"

        def load(self):
            return object

    import jobwire.runtime.plugins as mod  # the one registry every plugin kind is loaded through

    monkeypatch.setattr(mod, "entry_points", lambda **kw: [EP()])
    with pytest.raises(TypeError, match="not a subclass of Executor"):
        load_executor("bad")


@pytest.mark.unit
def test_local_capacity_defaults_to_this_machine(tmp_path):
    ex = LocalExecutor(ExecutorSettings(node="n", root=str(tmp_path)))
    cap = ex.capacity()
    assert cap.slots == os.cpu_count() and cap.cpus == float(os.cpu_count() or 1)
    assert cap.memory == memory_total() and cap.gpus == 0
    given = LocalExecutor(
        ExecutorSettings(node="n", root=str(tmp_path), slots=2, memory="1G", gpus=1)
    ).capacity()
    assert (given.slots, given.memory, given.gpus) == (2, 1 << 30, 1)


@pytest.mark.integration
async def test_local_transport_files_and_probe(tmp_path):
    t = LocalTransport()
    d = str(tmp_path / "a" / "b")
    await t.mkdir(d)
    await t.write_file(f"{d}/x", b"0123456789", 0o600)
    assert stat.S_IMODE(os.stat(f"{d}/x").st_mode) == 0o600
    assert await t.read_file(f"{d}/x", 3, 4) == b"3456"
    os.symlink("/etc", f"{d}/link")
    await t.mkdir(f"{d}/sub")
    await t.write_file(f"{d}/sub/y", b"y")
    names = {(e.name, e.kind) for e in await t.list_dir(str(tmp_path), depth=None)}
    assert {("a/b/x", "file"), ("a/b/link", "link"), ("a/b/sub/y", "file")} <= names
    assert all(n.count("/") == 0 for n, _ in {(e.name, e.kind) for e in await t.list_dir(str(tmp_path))})

    await t.write_file(f"{d}/pid", f"{os.getpgrp()}\n".encode())
    [here, missing] = await t.probe(
        [d, str(tmp_path / "nope")], read=["pid", "none"], stat=["x"], alive_from="pid"
    )
    assert here.exists and here.files == {"pid": f"{os.getpgrp()}\n".encode()} and here.alive is True
    assert here.stats["x"].size == 10
    assert not missing.exists
    await t.remove_tree(str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    with pytest.raises(FileNotFoundError):
        await t.read_file(f"{d}/x")


@pytest.mark.integration
async def test_local_transport_run_is_argv_only_and_keeps_secrets_out(monkeypatch):
    monkeypatch.setenv("JOBWIRE_NATS_PASSWORD", "secret")
    t = LocalTransport()
    r = await t.run(
        [
            sys.executable,
            "-c",
            "import os,sys; print(sys.argv[1], os.environ.get('JOBWIRE_NATS_PASSWORD'))",
            "$(echo no)",
        ]
    )
    assert r.stdout == b"$(echo no) None\n"
    r = await t.run(["cat"], stdin=b"in", env={"PATH": "/nonexistent"})  # cat is found in our PATH
    assert (r.rc, r.stdout) == (0, b"in")
    with pytest.raises(TransportTimeout):
        await t.run(["sleep", "5"], timeout=0.2)
    assert await t.signal_group(2**22 + 12345, signal.SIGTERM) is False


@pytest.mark.unit
def test_backend_options_are_decoded_by_the_backends_own_type(tmp_path):
    from jobwire.contracts.v1 import DockerOptions, JobSpec, RunJob
    from jobwire.execution import StartRefused

    class Dock(LocalExecutor):  # a backend whose options are Docker's
        backend = "docker"
        options_type = DockerOptions
        options_field = "docker"

    ex = Dock(ExecutorSettings(node="n", root=str(tmp_path)))
    assert ex.options_schema() is not None and "shm_size" in str(ex.options_schema())
    run = RunJob(
        job_id="j", attempt=1, node="n", spec=JobSpec(command=["true"], backend_options={"shm_size": "1M"})
    )
    decoded = ex.with_options(run)
    assert decoded.spec.docker == DockerOptions(shm_size=1024 * 1024) and decoded.spec.backend_options == {}
    for bad, why in (
        ({"shm_size": "lots"}, "backend_options"),
        ({"network": "host"}, "namespace"),  # a check no schema can express: the executor's own
        ({"nope": 1}, "nope"),
        ({"gpu_ids": ["0", "1"]}, "names 2 GPU"),  # held against resources like the docker field
    ):
        with pytest.raises(StartRefused, match=why):
            ex.with_options(
                RunJob(job_id="j", attempt=1, node="n", spec=JobSpec(command=["true"], backend_options=bad))
            )
    both = JobSpec(command=["true"], docker=DockerOptions(), backend_options={"user": "1000"})
    with pytest.raises(StartRefused, match="not both"):
        ex.with_options(RunJob(job_id="j", attempt=1, node="n", spec=both))


@pytest.mark.unit
def test_a_wrapper_end_heard_is_told_by_run_whether_it_came_before_or_after_its_pid_was_read(tmp_path):
    """The local transport hears a wrapper end by pid; the executor tells the run loop which run. A
    no-op job's wrapper often ends before its launch has read the pid: that end is kept and told
    once the pid is read, and only then."""
    ex = LocalExecutor(ExecutorSettings(node="n", root=str(tmp_path)))
    woken: list[tuple[str, int]] = []
    ex.on_run_change(woken.append)
    assert ex.transport.on_exit is not None
    ex._watch_pid(101, ("late", 1))
    ex.transport.on_exit(101)  # ends after its launch recorded it
    ex.transport.on_exit(202)  # ends before its launch read the pid
    assert woken == [("late", 1)]
    ex._watch_pid(202, ("early", 1))
    assert woken == [("late", 1), ("early", 1)]
    ex.transport.on_exit(202)  # told once: a second end of that pid is nobody's
    ex.transport.on_exit(101)
    assert woken == [("late", 1), ("early", 1)]
