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
