"""Every feedctl command's --help renders (argparse formats help strings with %, so a bare one breaks it); the
commands that work on a database migrate only the embedded one."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from feedcore import settings
from feedcore.errors import ModelImportFailed
from feedlocal import embedded
from feedlocal.cli import build_parser, main
from feedlocal.instacart import InvalidDataset
from tests.conftest import run_feedctl


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


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["report", "--since", "last week"], "--since: expected an ISO 8601 date or time, e.g. 2026-11-01, not "
                                            "'last week'"),
        (["report", "--since", "2026-11-01", "--attribution-hours", "x"], "--attribution-hours: expected a number "
                                                                          "of hours, not 'x'"),
        *[
            (["report", "--since", "2026-11-01", "--attribution-hours", hours],
             f"--attribution-hours: must be more than 0 and at most 8760 hours, not {hours}")
            for hours in ("nan", "inf", "-5", "0", "1e12")
        ],
        (["eval-instacart", "data", "--k", "0"], "--k: must be at least 1, not 0"),
        (["eval-instacart", "data", "--users", "-1"], "--users: must be at least 1, not -1"),
        (["seed", "--users", "-5"], "--users: must be at least 0, not -5"),
        (["seed", "--users", "abc"], "--users: expected a whole number, not 'abc'"),
        (["retention", "--keep-days", "0"], "--keep-days: must be at least 1, not 0"),
        (["retention", "--keep-days", "36501"], "--keep-days: must be at most 36500, not 36501"),
        (["retention", "--keep-days", "1e3"], "--keep-days: expected a whole number, not '1e3'"),
        (["seed", "--stores", "0"], "--stores: must be at least 1, not 0"),
        (["seed", "--days", "0"], "--days: must be at least 1, not 0"),
        (["seed", "--days", "999999999"], "--days: must be at most 3650, not 999999999"),  # was an OverflowError
        (["demo", "--stores", "999999999999"], "--stores: must be at most 1000, not 999999999999"),  # ran for hours
        (["seed", "--users", "100000001"], "--users: must be at most 100000, not 100000001"),
        (["serve", "--port", "99999"], "--port: must be at most 65535, not 99999"),
        (["instacart-synthetic", "out", "--users", "-3"], "--users: must be at least 1, not -3"),
        (["bench", "ingest", "--batch-size", "0"], "--batch-size: must be at least 1, not 0"),
        (["bench", "ingest", "--workers", "0"], "--workers: must be at least 1, not 0"),
        (["bench", "fanout", "--shards", "1"], "--shards: must be at least 2, not 1"),
        (["bench", "fanout", "--shards", "257"], "--shards: must be at most 256, not 257"),
        (["bench", "coldstart", "--runs", "0"], "--runs: must be at least 1, not 0"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_by_name(argv: list[str], error: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(argv)

    assert refused.value.code == 2
    command = " ".join(argv[:2]) if argv[0] == "bench" else argv[0]
    assert f"feedctl {command}: error: argument {error}" in capsys.readouterr().err


def test_the_report_reads_the_attribution_window_in_hours() -> None:
    args = build_parser().parse_args(["report", "--since", "2026-11-01", "--attribution-hours", "1.5"])
    assert args.attribution_hours == timedelta(minutes=90)
    assert build_parser().parse_args(["report", "--since", "2026-11-01"]).attribution_hours == timedelta(hours=24)


@pytest.mark.parametrize(
    "command", [["recompute"], ["retention", "--keep-days", "400"], ["report", "--since", "2026-11-01"]]
)
def test_an_unreachable_database_is_one_line_and_a_non_zero_exit(command: list[str], tmp_path: Path) -> None:
    unreachable = f"postgresql:///feed?host={tmp_path}&connect_timeout=1"  # no server listens there
    done = run_feedctl(unreachable, *command, check=False)

    assert done.returncode == 1
    assert done.stderr.startswith(f"feedctl {command[0]}: the database is unavailable: ")
    assert "Traceback" not in done.stderr


def test_the_report_migrates_the_embedded_database_as_the_other_commands_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "ensure_usable_database", lambda: "postgresql:///feed?host=/nonexistent")

    with pytest.raises(SystemExit, match="feedctl report: the database is unavailable: .*/nonexistent"):
        main(["report", "--since", "2026-11-01"])


def test_a_file_that_cannot_be_written_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"feedctl openapi: \[Errno 2\] No such file or directory: .*missing"):
        main(["openapi", "--out", str(tmp_path / "missing" / "openapi.json")])


def test_a_failed_model_import_is_one_line_and_a_non_zero_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from feedlocal import cli

    def failing(args: argparse.Namespace) -> None:
        raise ModelImportFailed({"picked_for_you": "ClientError: Access Denied"})

    monkeypatch.setattr(cli, "cmd_recompute", failing)

    with pytest.raises(SystemExit, match="^feedctl recompute: model import failed: picked_for_you: ClientError: Acc"):
        main(["recompute"])


def test_feedctl_debug_shows_the_traceback_of_an_error_otherwise_told_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flat = tmp_path / "flat.csv"
    flat.write_text("order_id\n1\n")
    split = ["instacart-split", str(flat), str(tmp_path / "out")]
    with pytest.raises(SystemExit, match=f"^feedctl instacart-split: {flat}: no column user_id, "):
        main(split)

    monkeypatch.setenv("FEEDCTL_DEBUG", "1")
    with pytest.raises(InvalidDataset, match=f"^{flat}: no column user_id, "):
        main(split)


def test_an_ingest_bench_of_batches_the_handler_refuses_is_one_line_before_any_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Batches past the limit were answered 413 by the handler, and the bench ended in a worker's traceback; a batch
    # size of 10**8 made that many warm-up events first, for hours.
    from feedlocal import bench

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bench generated its events")

    monkeypatch.setattr(bench, "synthetic_events", never)

    with pytest.raises(SystemExit, match=r"^feedctl bench: --batch-size 501: a batch holds at most 500 events "):
        main(["bench", "ingest", "--events", "1", "--batch-size", "501"])


def test_an_ingest_bench_of_batches_past_the_body_limit_is_one_line_before_any_database_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the count of events was checked: batches of more bytes than INGEST_MAX_BODY_BYTES were each answered 413.
    from feedlocal import bench

    def no_database(*args: object) -> None:
        raise AssertionError("the bench made its database")

    monkeypatch.setattr(bench, "scratch_database", no_database)
    monkeypatch.setenv("INGEST_MAX_BODY_BYTES", "2048")
    settings.ingest_settings.cache_clear()
    try:
        with pytest.raises(SystemExit, match=r"^feedctl bench: --batch-size 20: a batch of \d+ bytes is past "
                           r"INGEST_MAX_BODY_BYTES \(2048\)"):  # fmt: skip
            main(["bench", "ingest", "--events", "40", "--batch-size", "20"])
    finally:
        monkeypatch.delenv("INGEST_MAX_BODY_BYTES")
        settings.ingest_settings.cache_clear()
