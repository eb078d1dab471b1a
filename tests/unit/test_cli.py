"""Every feedctl command's --help renders (argparse formats help strings with %, so a bare one breaks it); the
commands that work on a database migrate only the embedded one."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from feedlocal import embedded
from feedlocal.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, f"{path} {name}")


COMMANDS = dict(_commands(build_parser(), "feedctl"))


def test_the_commands_include_the_benchmarks() -> None:
    assert {"feedctl bench ingest", "feedctl bench recompute", "feedctl bench feed"} <= COMMANDS.keys()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_renders(command: str) -> None:
    parser = COMMANDS[command]

    assert parser.format_help().startswith(f"usage: {command}")


def test_a_given_database_is_used_as_it_is_and_never_migrated_from_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def migrate(url: str) -> list[str]:
        raise AssertionError(f"migrated {url}")

    monkeypatch.setattr(embedded, "migrate_database", migrate)
    monkeypatch.setenv("DATABASE_URL", "postgresql://operator@deployed.example/feed")

    assert embedded.ensure_usable_database() == "postgresql://operator@deployed.example/feed"


@pytest.mark.parametrize("given", ["0", "-5"])
def test_the_recompute_bench_refuses_fewer_than_one_new_event(given: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "recompute", "--new-events", given])

    assert f"--new-events: must be at least 1, not {given}" in capsys.readouterr().err


def test_the_recompute_bench_takes_its_new_events_apart_from_its_history() -> None:
    fixed = build_parser().parse_args(["bench", "recompute", "--events", "500000", "--new-events", "20000"])
    assert (fixed.events, fixed.new_events) == (500_000, 20_000)
    assert build_parser().parse_args(["bench", "recompute"]).new_events is None  # then 1 % of --events
