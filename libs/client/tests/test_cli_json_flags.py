"""Every command that prints a listing or a record takes ``--json`` and ``-o json`` alike.

Read from the parser itself, so a command added later without them (or with an ``-o`` that clashes)
fails here; the output of each is checked against the real stack in tests/e2e/test_cli_output_e2e.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from jobwire.client.cli import build_parser, wants_json

pytestmark = pytest.mark.unit

LISTINGS = {"ls", "counts", "nodes", "programs", "artifacts", "input ls", "token list", "status"}


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, (*path, name))


def leaf_parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def argv_for(path: tuple[str, ...]) -> list[str]:
    """The command with a value for each required positional (JOB, NAME, ...)."""
    positionals = [a for a in leaf_parser(path)._actions if not a.option_strings and a.nargs is None]
    return [*path, *("x" for _ in positionals)]


COMMANDS = list(leaves(build_parser()))
WITH_JSON = [c for c in COMMANDS if "--json" in leaf_parser(c)._option_string_actions]


def test_every_listing_command_exists() -> None:
    assert {" ".join(c) for c in COMMANDS} >= LISTINGS


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if "--json" in leaf_parser(c)._option_string_actions]
)
@pytest.mark.parametrize("flag", [["--json"], ["-o", "json"]], ids=["--json", "-o json"])
def test_json_both_ways(command: tuple[str, ...], flag: list[str]) -> None:
    args = build_parser().parse_args([*argv_for(command), *flag])
    assert wants_json(args)


@pytest.mark.parametrize("command", sorted(LISTINGS))
def test_each_listing_has_json(command: str) -> None:
    assert "--json" in leaf_parser(tuple(command.split()))._option_string_actions


def test_artifacts_o_stays_a_path_when_downloading() -> None:
    args = build_parser().parse_args(["artifacts", "JOB", "model.pt", "-o", "json"])
    assert not wants_json(args) and args.output == "json"
