"""Offline: the nvidia-smi parser on recorded-format output, GPU slots, the nodes file, shell quoting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jobwire.execution.gpus import GpuSlots, NoFreeGpu, parse_inventory
from jobwire.execution.transport import shell
from jobwire.executor_ssh import config as cf

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"


def test_simulated_gpus_inventory_parses_nvidia_smi_csv() -> None:
    gpus = parse_inventory((DATA / "h100x4.csv").read_text())
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert gpus[1].name == "NVIDIA H100 80GB HBM3" and gpus[1].memory_used_mib == 71233
    assert gpus[1].utilization_percent == 98 and gpus[0].uuid.startswith("GPU-")  # type: ignore[union-attr]
    assert gpus[3].memory_used_mib is None and gpus[3].utilization_percent is None  # [N/A]
    odd = parse_inventory("0, GPU-x, Some GPU, with a comma, 1024, 10, 5\n\n")
    assert odd[0].name == "Some GPU, with a comma" and odd[0].memory_total_mib == 1024
    with pytest.raises(ValueError, match="unexpected"):
        parse_inventory("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n")


def test_simulated_gpus_slots_never_share_a_gpu() -> None:
    slots = GpuSlots(wanted="all")
    slots.update(parse_inventory((DATA / "h100x4.csv").read_text()))
    a = slots.assign(("a", 1), 2)
    b = slots.assign(("b", 1), 1)
    assert a == [0, 1] and b == [2]
    with pytest.raises(NoFreeGpu):
        slots.assign(("c", 1), 2)
    slots.release(("a", 1))
    assert slots.assign(("c", 1), 2) == [0, 1]
    assert {g.index: g.job_id for g in slots.infos()} == {0: "c", 1: "c", 2: "b", 3: None}
    limited = GpuSlots(wanted=[1, 3])
    limited.update(slots.inventory)
    assert limited.usable() == [1, 3]
    with pytest.raises(ValueError, match="not offered"):
        limited.assign(("d", 1), 1, [0])
    first_two = GpuSlots(wanted=2)
    first_two.update(slots.inventory)
    assert first_two.usable() == [0, 1]


NODES = """
defaults: {user: jw, key: /etc/jobwire/key, known_hosts: /etc/jobwire/known_hosts}
hosts:
  bastion: {host: bastion.example, port: 2222}
nodes:
  gpu01: {host: 10.0.0.11, jump: [bastion, "ops@inner.example:22"], gpus: 2, labels: {gpu: a100}}
  gpu02: {host: 10.0.0.12, agent: true, key: null}
"""


def test_nodes_file_merges_defaults_and_resolves_jump_chains(tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(NODES)
    nodes = cf.load(path)
    gpu01 = nodes.nodes["gpu01"]
    assert gpu01.user == "jw" and gpu01.gpus == 2 and gpu01.labels == {"gpu": "a100"}
    jumps = gpu01.jumps(nodes.hosts)
    assert [(j.host, j.port, j.user) for j in jumps] == [
        ("bastion.example", 2222, "jw"),
        ("inner.example", 22, "ops"),
    ]
    assert all(j.known_hosts == "/etc/jobwire/known_hosts" and not j.trust_on_first_use for j in jumps)
    assert nodes.nodes["gpu02"].agent and nodes.nodes["gpu02"].gpus == "all"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"nodes": {"n": {"host": "h", "key": "k", "password": "hunter2"}}}, "passwords do not belong"),
        (
            {"defaults": {"passphrase": "x"}, "nodes": {"n": {"host": "h", "key": "k"}}},
            "passwords do not belong",
        ),
        ({"nodes": {"n": {"host": "h", "key": "k", "gpu": 2}}}, "unknown field"),
        ({"nodes": {"n": {"host": "h"}}}, "key file"),
        ({"nodes": {"n.x": {"host": "h", "key": "k"}}}, "node"),
        ({"nodes": {"n": {"host": "h", "key": "k", "jump": ["a@b@c"]}}}, "neither a host name"),
        ({"nodez": {}}, "unknown sections"),
    ],
)
def test_nodes_file_errors_name_the_problem(raw: dict, error: str) -> None:
    with pytest.raises(cf.ConfigError, match=error):
        cf.parse(raw)


HOSTILE = [
    "$(touch /tmp/jobwire-unit-pwned)",
    "`id`",
    "a'b\"c\\d",
    "; exit 9",
    "x\ny",
    "*",
    "~",
    "-n",
    "",
    "ü ☃",
]


def test_shell_text_carries_hostile_values_as_data(tmp_path: Path) -> None:
    """What the login shell receives runs the argv as given, whatever the values hold."""
    printer = 'printf "%s\\0" "$PWD" "$@" "$V1" "$V2"'
    cwd = tmp_path / "dir $(id) 'q'"
    cwd.mkdir()
    text = shell.command(
        ["sh", "-c", printer, "sh", *HOSTILE], env={"V1": HOSTILE[0], "V2": HOSTILE[4]}, cwd=str(cwd)
    )
    out = subprocess.run(["/bin/bash", "-c", text], capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == [str(cwd), *HOSTILE, HOSTILE[0], HOSTILE[4]]
    assert not Path("/tmp/jobwire-unit-pwned").exists()
    with pytest.raises(ValueError, match="environment variable name"):
        shell.command(["true"], env={"A;B": "x"})
    with pytest.raises(ValueError, match="option"):
        shell.command(["-rf"])


def test_probe_output_parses_contents_stats_and_liveness() -> None:
    out = (
        b"D 0 1\nR 0 pid\n|123\n.\nR 0 exit_code\n+0\n.\nA 0 0\nD 1 0\n"
        b"S 11 1700000000.5 /r/jobs/a/1/stdout\nS 5 1.0 /r/jobs/a/1/other\nE\n"
    )
    a, b = shell.parse_probe(out, ["/r/jobs/a/1", "/r/jobs/b/1"], ["pid", "exit_code"], ["stdout"], 65536)
    assert a.exists and a.files == {"pid": b"123\n", "exit_code": b"0"} and a.alive is False
    assert a.stats["stdout"].size == 11 and "other" not in a.stats
    assert not b.exists and b.files == {}
