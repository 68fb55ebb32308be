"""A job's directory read on the job's terms, on this machine: nothing outside it, no symlink
followed (also one swapped in for a checked file), regular files only, FIFOs never block."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobwire.execution.transport.confined import NotRegular, PathRefused, list_local, read_local

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not the job's")
    job = tmp_path / "job"
    (job / "work" / "ckpt").mkdir(parents=True)
    (job / "work" / "train.log").write_text("epoch 1\n")
    (job / "work" / "ckpt" / "e1.pt").write_bytes(b"\x00" * 10)
    os.symlink(outside / "secret", job / "work" / "escape")
    os.symlink(outside, job / "work" / "outdir")
    os.mkfifo(job / "work" / "pipe")
    return job


def test_reads_regular_files_in_parts(root: Path) -> None:
    assert read_local(str(root), "work/train.log", 0, 100) == (b"epoch 1\n", 8)
    assert read_local(str(root), "./work//train.log", 6, 1) == (b"1", 8)


@pytest.mark.parametrize(
    ("rel", "error"),
    [
        ("work/escape", PathRefused),
        ("work/outdir/secret", PathRefused),
        ("work/../../outside/secret", PathRefused),
        ("/etc/hostname", PathRefused),
        ("work/pipe", NotRegular),
        ("work", NotRegular),
        ("work/train.log/x", NotRegular),
        ("", PathRefused),
        ("work/a\0b", PathRefused),
    ],
)
def test_refuses_what_leaves_or_is_no_regular_file(root: Path, rel: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_local(str(root), rel, 0, 100)


def test_missing_files_and_directories_are_not_found(root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_local(str(root), "work/nothing", 0, 1)
    with pytest.raises(FileNotFoundError):
        list_local(str(tmp_path / "no-such-attempt"), "", 10)


def test_a_symlink_swapped_in_after_listing_is_not_followed(root: Path) -> None:
    entries, _ = list_local(str(root), "work", 100)
    assert {e.path: e.kind for e in entries}["work/train.log"] == "file"
    (root / "work" / "train.log").unlink()
    os.symlink(root.parent / "outside" / "secret", root / "work" / "train.log")
    with pytest.raises(PathRefused, match="symlink"):
        read_local(str(root), "work/train.log", 0, 100)


def test_listing_shows_symlinks_without_entering_them_and_is_capped(root: Path) -> None:
    entries, left = list_local(str(root), "", 100)
    kinds = {e.path: e.kind for e in entries}
    assert kinds == {
        "work": "dir",
        "work/ckpt": "dir",
        "work/ckpt/e1.pt": "file",
        "work/escape": "link",
        "work/outdir": "link",
        "work/pipe": "other",
        "work/train.log": "file",
    }
    assert left == 0
    few, left = list_local(str(root), "work", 2)
    assert len(few) == 2 and left == 4
    with pytest.raises(PathRefused):
        list_local(str(root), "work/outdir", 10)


def test_a_hard_link_to_a_file_outside_is_not_read(root: Path) -> None:
    os.link(root.parent / "outside" / "secret", root / "work" / "hardlinked")
    with pytest.raises(PathRefused, match="hard link"):
        read_local(str(root), "work/hardlinked", 0, 100)
    assert read_local(str(root), "work/train.log", 0, 100) == (b"epoch 1\n", 8)
