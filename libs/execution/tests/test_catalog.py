"""Program catalogs: configured entries, discovery on a real directory tree, resolution and refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobwire.contracts.v1 import JobSpec
from jobwire.contracts.v1.programs import version_key
from jobwire.execution.attempt.layout import AttemptDir
from jobwire.execution.catalog import (
    Catalog,
    CatalogConfigError,
    Program,
    ProgramNotFound,
    Scan,
    load_programs,
    scan,
)
from jobwire.execution.catalog.discovery import find_argv
from jobwire.execution.executor import StartRefused
from jobwire.execution.runner.command import NO_CATALOG, plan
from jobwire.execution.transport import ExecResult
from jobwire.execution.transport.local import LocalTransport


def entry(root: Path, rel: str, text: str = "#!/bin/sh\necho hi\n", mode: int = 0o755) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "programs"
    entry(root, "NEWAVE/v28.16.4/run")
    (root / "NEWAVE/v28.16.4/description").write_text("Hydro-thermal dispatch\nsecond line\n")
    entry(root, "NEWAVE/v28.2/run.sh")
    entry(root, "NEWAVE/v3/run", mode=0o644)  # not executable: skipped, with a reason
    entry(root, "DECOMP/31.0/run")
    entry(root, "DECOMP/31.0/run.sh")  # run wins over run.sh
    entry(root, "DECOMP/31.0/bin/helper")  # deeper files are not entries
    entry(root, "bad name/1/run")
    entry(root, ".hidden/1/run")
    entry(root, "NOENTRY/1/README")
    entry(root, "toplevel-run")
    os.symlink("v28.16.4", root / "NEWAVE/latest")
    return root


@pytest.mark.integration
async def test_discovery_finds_executable_entries_in_one_listing(tree: Path) -> None:
    t = LocalTransport()
    found = await scan(t, str(tree))
    by_id = {p.id: p for p in found.programs}
    assert sorted(by_id) == ["DECOMP@31.0", "NEWAVE@latest", "NEWAVE@v28.16.4", "NEWAVE@v28.2"]
    assert by_id["NEWAVE@v28.16.4"].argv == (f"{tree}/NEWAVE/v28.16.4/run",)
    assert by_id["NEWAVE@v28.16.4"].description == "Hydro-thermal dispatch"
    assert by_id["NEWAVE@latest"].description == "Hydro-thermal dispatch"
    assert by_id["NEWAVE@v28.2"].argv == (f"{tree}/NEWAVE/v28.2/run.sh",)
    assert by_id["DECOMP@31.0"].argv == (f"{tree}/DECOMP/31.0/run",)
    problems = "\n".join(found.problems)
    assert "NEWAVE@v3" in problems and "not an executable file" in problems
    assert "'bad name'" in problems and ".hidden" in problems


@pytest.mark.integration
async def test_a_missing_root_is_an_empty_catalog_with_a_reason(tmp_path: Path) -> None:
    found = await scan(LocalTransport(), str(tmp_path / "nowhere"))
    assert found.programs == [] and "does not exist" in found.problems[0]


class CountingTransport(LocalTransport):
    """The local transport, counting the commands it runs (discovery must not grow with programs)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[list[str]] = []

    async def run(self, argv, **kw):  # type: ignore[no-untyped-def, override]
        self.commands.append(list(argv))
        result: ExecResult = await super().run(argv, **kw)
        return result


@pytest.mark.integration
async def test_discovery_is_one_find_whatever_the_number_of_programs(tmp_path: Path) -> None:
    for n in range(60):
        entry(tmp_path, f"P{n}/1.{n}/run")
    t = CountingTransport()
    found = await scan(t, str(tmp_path))
    assert len(found.programs) == 60
    assert t.commands == [find_argv(str(tmp_path))]


@pytest.mark.integration
async def test_refresh_sees_new_versions_and_keeps_the_last_result_when_a_scan_fails(tree: Path) -> None:
    t = LocalTransport()
    fail = False

    async def scanner() -> Scan:
        if fail:
            raise OSError("login node unreachable")
        return await scan(t, str(tree))

    cat = Catalog("jwtest", scanner=scanner)
    assert await cat.refresh() is True
    assert await cat.refresh() is False
    entry(tree, "NEWAVE/v29/run")
    assert await cat.refresh() is True
    assert "NEWAVE@v29" in cat.programs
    fail = True
    assert await cat.refresh() is False
    assert "NEWAVE@v29" in cat.programs


@pytest.mark.unit
def test_resolution_and_refusals_say_what_the_cluster_has() -> None:
    cat = Catalog(
        "jwtest",
        configured=[
            Program("NEWAVE", "v10", ("/opt/newave/10/run",)),
            Program("NEWAVE", "v9", ("/opt/newave/9/run",)),
            Program("DECOMP", "31", ("/opt/decomp", "--batch")),
        ],
    )
    assert cat.resolve("DECOMP@31").argv == ("/opt/decomp", "--batch")
    with pytest.raises(ProgramNotFound) as e:
        cat.resolve("NEWAVE@v11")
    assert str(e.value) == (
        "program 'NEWAVE@v11' is not in the catalog of cluster 'jwtest'; known versions of NEWAVE: v9, v10"
    )
    with pytest.raises(ProgramNotFound, match=r"it offers DECOMP, NEWAVE$"):
        cat.resolve("GAMS@1")
    with pytest.raises(ProgramNotFound, match="it offers no programs"):
        Catalog("empty").resolve("GAMS@1")
    msg = cat.message("hpc-a")
    assert (msg.node, msg.cluster) == ("hpc-a", "jwtest")
    assert [p.id for p in msg.programs] == ["DECOMP@31", "NEWAVE@v9", "NEWAVE@v10"]


@pytest.mark.unit
def test_configured_entries_win_over_discovered_ones() -> None:
    cat = Catalog("c", configured=[Program("A", "1", ("/pinned",))])
    cat._discovered = {"A@1": Program("A", "1", ("/found",)), "A@2": Program("A", "2", ("/found2",))}
    assert cat.resolve("A@1").argv == ("/pinned",) and cat.resolve("A@2").argv == ("/found2",)


@pytest.mark.unit
def test_version_order_is_natural() -> None:
    assert sorted(["v10", "v9", "v9.1", "v1.10", "v1.9"], key=version_key) == [
        "v1.9",
        "v1.10",
        "v9",
        "v9.1",
        "v10",
    ]


@pytest.mark.unit
def test_programs_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "programs.toml"
    toml.write_text(
        '[[programs]]\nname = "NEWAVE"\nversion = "v28.16.4"\nentry = "/opt/newave/28.16.4/newave.sh"\n'
        'description = "dispatch"\n\n[[programs]]\nname = "py"\nversion = "3.11"\n'
        'command = ["/usr/bin/python3", "-u"]\n'
    )
    progs = load_programs(toml)
    assert [(p.id, p.argv, p.description) for p in progs] == [
        ("NEWAVE@v28.16.4", ("/opt/newave/28.16.4/newave.sh",), "dispatch"),
        ("py@3.11", ("/usr/bin/python3", "-u"), None),
    ]
    js = tmp_path / "programs.json"
    js.write_text('[{"name": "py", "version": "3.12", "command": ["python3.12"]}]')
    assert load_programs(js)[0].argv == ("python3.12",)
    js.write_text('{"programs": [{"name": "py", "version": "3.12", "command": ["python3.12"]}]}')
    assert load_programs(js)[0].id == "py@3.12"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("item", "message"),
    [
        ('{"name": "a", "version": "1"}', "exactly one of 'command'"),
        ('{"name": "a", "version": "1", "command": ["x"], "entry": "/x"}', "exactly one of 'command'"),
        ('{"name": "a", "version": "1", "entry": "relative/run"}', "absolute path"),
        ('{"name": "a;b", "version": "1", "command": ["x"]}', "program name 'a;b'"),
        ('{"name": "a", "version": "../1", "command": ["x"]}', "program version '../1'"),
        ('{"name": "a", "version": "1", "command": []}', "non-empty argv"),
        ('{"name": "a", "version": "1", "command": ["x"], "shell": true}', "unknown field"),
    ],
)
def test_bad_program_entries_stop_the_start_with_their_name(tmp_path: Path, item: str, message: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(f"[{item}]")
    with pytest.raises(CatalogConfigError, match=message):
        load_programs(f)


@pytest.mark.unit
def test_plan_runs_the_program_with_args_as_separate_arguments() -> None:
    d = AttemptDir("/root/jobs/j/1")
    cat = Catalog("c", configured=[Program("A", "1", ("/opt/a/run", "--fixed"))])
    hostile = ["; rm -rf /", "$(id)", "`id`", "a'b\"c", "new\nline"]
    p = plan(JobSpec(program="A@1", args=hostile), d, cat)
    assert p.argv == ["/opt/a/run", "--fixed", *hostile]
    assert p.cwd == d.work and p.files == []
    with pytest.raises(StartRefused, match=NO_CATALOG):
        plan(JobSpec(program="A@1"), d)
    with pytest.raises(ProgramNotFound, match="known versions of A: 1"):
        plan(JobSpec(program="A@2"), d, cat)
