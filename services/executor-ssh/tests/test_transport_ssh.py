"""The SSH transport against real sshd: jump chain, host keys, hostile values, one-command probes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from jobwire.execution.transport import TransportError
from jobwire.execution.transport.ssh import HostKeyError, SshHost, SshTransport
from tests.fixtures.ssh import SshCluster

pytestmark = [pytest.mark.integration, pytest.mark.backend("ssh")]


def _hosts(
    c: SshCluster, node: str = "gpu-a", known_hosts: Path | None = None, **kw: object
) -> tuple[SshHost, SshHost]:
    kh = str(known_hosts or c.known_hosts)
    jump = SshHost("127.0.0.1", c.jump_port, c.user, str(c.client_key), known_hosts=str(c.known_hosts))
    target = SshHost(c.nodes[node].address, 22, c.user, str(c.client_key), known_hosts=kh, **kw)  # type: ignore[arg-type]
    return target, jump


async def test_commands_reach_the_node_only_through_the_jump_host(cluster: SshCluster) -> None:
    target, jump = _hosts(cluster)
    t = SshTransport(target, [jump], connect_timeout=3)
    try:
        assert (await t.run(["hostname"])).stdout == b"gpu-a\n"
    finally:
        await t.close()
    direct = SshTransport(target, [], connect_timeout=3)
    with pytest.raises(TransportError, match="cannot connect"):
        await direct.run(["hostname"])
    await direct.close()


async def test_an_unknown_host_key_refuses_the_node(cluster: SshCluster, tmp_path: Path) -> None:
    only_jump = tmp_path / "known_hosts"
    only_jump.write_text(cluster.known_hosts.read_text().splitlines()[0] + "\n")
    target, jump = _hosts(cluster, known_hosts=only_jump)
    t = SshTransport(target, [jump], connect_timeout=3)
    with pytest.raises(HostKeyError, match=r"not in .*refusing"):
        await t.run(["true"])
    await t.close()


async def test_a_changed_host_key_is_refused_even_with_trust_on_first_use(
    cluster: SshCluster, tmp_path: Path
) -> None:
    other = cluster.nodes["gpu-b"].hostkey_pub
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{cluster.nodes['gpu-a'].address} {other}\n")
    target, jump = _hosts(cluster, known_hosts=forged, trust_on_first_use=True)
    t = SshTransport(target, [jump], connect_timeout=3)
    with pytest.raises(HostKeyError, match="CHANGED"):
        await t.run(["true"])
    await t.close()


async def test_trust_on_first_use_is_an_explicit_logged_opt_in(
    cluster: SshCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = tmp_path / "new_known_hosts"
    target, jump = _hosts(cluster, known_hosts=fresh, trust_on_first_use=True)
    t = SshTransport(target, [jump], connect_timeout=3)
    with caplog.at_level(logging.WARNING):
        assert (await t.run(["true"])).rc == 0
    await t.close()
    assert any("trusting the unknown" in r.getMessage() for r in caplog.records)
    assert cluster.nodes["gpu-a"].hostkey_pub.split()[1] in fresh.read_text()


HOSTILE = ["$(id)", "`id`", "a'b\"c", "; exit 9", "x\ny", "*", "~", "-n", "ünï ☃", ""]


async def test_hostile_argv_env_and_cwd_arrive_as_data(cluster: SshCluster) -> None:
    target, jump = _hosts(cluster)
    t = SshTransport(target, [jump])
    try:
        home = await t.home()
        weird = f"{home}/dir with 'quotes' and $(id)"
        await t.mkdir(weird)
        env = {f"H{i}": v for i, v in enumerate(HOSTILE)}
        printer = (
            'printf "%s\\0" "$PWD" "$@"; '
            'for i in 0 1 2 3 4 5 6 7 8 9; do eval "printf \\"%s\\0\\" \\"\\$H$i\\""; done'
        )
        r = await t.run(["sh", "-c", printer, "sh", *HOSTILE], env=env, cwd=weird)
        assert r.rc == 0, r.stderr
        parts = r.stdout.decode().split("\0")[:-1]
        assert parts == [weird, *HOSTILE, *HOSTILE]
    finally:
        await t.close()


async def test_probe_is_one_remote_command_for_many_directories(cluster: SshCluster) -> None:
    target, jump = _hosts(cluster)

    class Counting(SshTransport):
        commands = 0

        async def shell(self, cmd: str, **kw: object) -> object:  # type: ignore[override]
            Counting.commands += 1
            return await super().shell(cmd, **kw)  # type: ignore[arg-type]

    t = Counting(target, [jump])
    try:
        home = await t.home()
        dirs = [f"{home}/probe/{i}" for i in range(40)]
        for i, d in enumerate(dirs[:30]):
            await t.mkdir(d)
            await t.write_file(f"{d}/pid", f"{100000 + i}\n".encode())
            await t.write_file(f"{d}/stdout", b"x" * i)
        Counting.commands = 0
        probes = await t.probe(dirs, read=["pid", "exit_code"], stat=["stdout"], alive_from="pid")
        assert Counting.commands == 1
        assert [p.exists for p in probes] == [True] * 30 + [False] * 10
        assert probes[7].files == {"pid": b"100007\n"} and probes[7].stats["stdout"].size == 7
        assert probes[7].alive is False
    finally:
        await t.close()


async def test_many_concurrent_commands_stay_under_the_channel_cap(cluster: SshCluster) -> None:
    target, jump = _hosts(cluster)
    t = SshTransport(target, [jump], max_channels=4)
    try:
        results = await asyncio.gather(
            *(t.run(["sh", "-c", "sleep 0.2; echo $1", "sh", str(i)]) for i in range(40))
        )
        assert [r.stdout.decode().strip() for r in results] == [str(i) for i in range(40)]
    finally:
        await t.close()


async def test_a_cut_link_fails_fast_and_the_connection_comes_back(cluster: SshCluster) -> None:
    target, jump = _hosts(cluster, node="gpu-b")
    t = SshTransport(target, [jump], connect_timeout=2, command_timeout=2, backoff_max=0.5)
    node = cluster.nodes["gpu-b"]
    try:
        assert (await t.run(["true"])).rc == 0
        node.cut()
        try:
            with pytest.raises(TransportError):
                await t.run(["true"])
        finally:
            node.restore()

        async def back() -> bool:
            for _ in range(40):
                try:
                    return (await t.run(["hostname"])).stdout == b"gpu-b\n"
                except TransportError:
                    await asyncio.sleep(0.25)
            return False

        assert await back()
    finally:
        await t.close()


async def test_a_jobs_files_are_read_without_following_symlinks(cluster: SshCluster) -> None:
    """GET /v1/jobs/{id}/files over SSH: the same refusals as on this machine (lstat walk over SFTP)."""
    from jobwire.execution.transport.confined import NotRegular, PathRefused

    target, jump = _hosts(cluster)
    t = SshTransport(target, [jump], connect_timeout=3)
    try:
        root = f"{await t.home()}/confined-{id(t)}"
        await t.mkdir(f"{root}/work/ckpt")
        await t.write_file(f"{root}/work/train.log", b"epoch 1\n")
        await t.write_file(f"{root}/work/ckpt/e1.pt", b"\x00" * 10)
        for argv in (
            ["ln", "-s", "/etc/hostname", f"{root}/work/escape"],
            ["ln", "-s", "/etc", f"{root}/work/etc"],
        ):
            (await t.run(argv)).check("ln")
        (await t.run(["mkfifo", f"{root}/work/pipe"])).check("mkfifo")

        assert await t.read_confined(root, "work/train.log", 6, 10) == (b"1\n", 8)
        for rel, error in (
            ("work/escape", PathRefused),
            ("work/etc/hostname", PathRefused),
            ("work/../..", PathRefused),
            ("work/pipe", NotRegular),
            ("work", NotRegular),
        ):
            with pytest.raises(error):
                await t.read_confined(root, rel, 0, 10)
        with pytest.raises(FileNotFoundError):
            await t.read_confined(root, "work/none", 0, 10)
        entries, left = await t.list_confined(root, "", 100)
        kinds = {e.path: e.kind for e in entries}
        assert kinds["work/ckpt/e1.pt"] == "file" and kinds["work/escape"] == "link"
        assert not any(p.startswith("work/etc/") for p in kinds) and left == 0
    finally:
        await t.run(["rm", "-rf", "--", root])
        await t.close()
