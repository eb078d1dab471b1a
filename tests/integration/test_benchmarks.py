"""The benchmark commands run end to end on a small dataset and print their figures as a final JSON line.
(Their speed is measured by running them, not asserted here.)"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.conftest import feedctl_json


def assert_numbers(figures: dict, keys: set[str]) -> None:
    """The figures are exactly `keys`, each a number (not a boolean, not NaN)."""
    assert set(figures) == keys, set(figures) ^ keys
    for key in keys:
        value = figures[key]
        assert isinstance(value, int | float) and not isinstance(value, bool) and value == value, (key, value)


def test_bench_ingest_prints_its_figures(database_url: str) -> None:
    figures = feedctl_json(database_url, "bench", "ingest", "--events", "3000", "--workers", "2")

    assert_numbers(figures, {"events", "batch_size", "workers", "events_per_s", "copy_events_per_s",
                             "copy_stream_events_per_s", "ratio"})  # fmt: skip
    assert (figures["events"], figures["workers"]) == (3000, 2)
    assert figures["copy_stream_events_per_s"] > 0 and figures["ratio"] > 0
    assert figures["events_per_s"] > 0 and figures["copy_events_per_s"] > 0
    assert abs(figures["ratio"] - figures["events_per_s"] / figures["copy_events_per_s"]) < 0.01


def test_bench_recompute_prints_its_figures(database_url: str) -> None:
    figures = feedctl_json(database_url, "bench", "recompute", "--events", "5000")

    scored = figures.pop("events_scored")
    assert_numbers(
        figures, {"events", "users", "known_users", "new_events", "full_s", "incremental_s", "incremental_ratio"}
    )
    figures["events_scored"] = scored
    assert set(scored) == {"full", "incremental"}
    assert (figures["events"], figures["users"], figures["new_events"]) == (5000, 50_000, 50)
    assert 0 < figures["known_users"] <= sum(figures["events_scored"].values())  # each with a scored event
    assert figures["full_s"] > 0 and figures["incremental_s"] > 0
    # incremental_s / full_s, rounded to four places.
    assert figures["incremental_ratio"] == pytest.approx(figures["incremental_s"] / figures["full_s"], abs=0.01)
    assert figures["events_scored"]["incremental"] > 0  # the new events, and only those
    assert figures["events_scored"]["incremental"] < figures["events_scored"]["full"] / 50


def test_bench_recompute_adds_the_new_events_it_is_given_whatever_the_history(database_url: str) -> None:
    figures = feedctl_json(database_url, "bench", "recompute", "--events", "3000", "--new-events", "400")

    assert (figures["events"], figures["new_events"]) == (3000, 400)
    # More new events scored than the default 1 % (30) could give: the 400 were added, not just reported.
    assert 30 < figures["events_scored"]["incremental"] <= 400
    assert figures["full_s"] > 0 and figures["incremental_s"] > 0


def test_bench_recompute_draws_the_history_from_the_users_it_is_given(database_url: str) -> None:
    figures = feedctl_json(database_url, "bench", "recompute", "--events", "3000", "--users", "7")

    assert (figures["users"], figures["known_users"]) == (7, 7)  # 3,000 events leave none of the seven out


def test_bench_fanout_prints_its_figures(database_url: str) -> None:
    figures = feedctl_json(database_url, "bench", "fanout", "--events", "3000", "--backlog", "1000", "--shards", "2")

    assert_numbers(figures, {"events", "backlog", "shards", "events_scored", "single_s", "fanout_s", "speedup"})
    assert (figures["events"], figures["backlog"], figures["shards"]) == (3000, 1000, 2)
    assert figures["events_scored"] > 0  # the same in both runs, or the command fails
    assert figures["single_s"] > 0 and figures["fanout_s"] > 0
    # The ratio of the unrounded times: within the rounding of short runs.
    assert figures["speedup"] == pytest.approx(figures["single_s"] / figures["fanout_s"], rel=0.05)


def test_bench_feed_prints_its_figures(database_url: str) -> None:
    figures = feedctl_json(
        database_url, "bench", "feed", "--users", "300", "--items", "500", "--stores", "3", "--events", "5000",
        "--requests", "50",
    )  # fmt: skip

    assert figures.pop("reused_database") is False
    assert_numbers(figures, {"users", "items", "stores", "events", "requests", "p50_ms", "p95_ms", "p99_ms",
                             "select1_p50_ms", "p50_over_select1", "queries_per_feed", "shelf_check_p50_ms",
                             "shelf_miss_p50_ms", "rss_mb"})  # fmt: skip
    assert (figures["users"], figures["items"], figures["stores"]) == (300, 500, 3)
    assert (figures["events"], figures["requests"]) == (5000, 50)
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["select1_p50_ms"] > 0
    # p50_ms / select1_p50_ms (rounded to one place; its parts to two and three).
    assert figures["p50_over_select1"] == pytest.approx(figures["p50_ms"] / figures["select1_p50_ms"], rel=0.05)
    assert figures["queries_per_feed"] == 2  # the user's rows, and recording the feed with its snapshot
    assert figures["shelf_miss_p50_ms"] > 0 and figures["shelf_check_p50_ms"] > 0
    assert 50 < figures["rss_mb"] < 4096


def test_bench_feed_keeps_its_database_for_the_next_run_with_the_same_sizes(database_url: str) -> None:
    sizes = ("--users", "200", "--items", "300", "--stores", "2", "--events", "2000", "--requests", "20")
    name = f"feed_bench_kept_{uuid.uuid4().hex[:8]}"
    try:
        first = feedctl_json(database_url, "bench", "feed", *sizes, "--keep-database", name)
        again = feedctl_json(database_url, "bench", "feed", *sizes, "--keep-database", name)
        other = feedctl_json(database_url, "bench", "feed", *sizes[:-2], "--requests", "10", "--keep-database", name)
        larger = feedctl_json(database_url, "bench", "feed", *sizes[:6], "--events", "3000", "--keep-database", name)
    finally:
        with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    assert (first["reused_database"], again["reused_database"], other["reused_database"]) == (False, True, True)
    assert larger["reused_database"] is False  # other sizes: seeded afresh
    assert again["p50_ms"] > 0 and other["requests"] == 10


def test_bench_coldstart_prints_its_figures(database_url: str) -> None:
    figures = feedctl_json(database_url, "bench", "coldstart", "--runs", "1")

    assert_numbers(figures, {"runs", "coldstart_ms", "with_interpreter_start_ms"})
    assert figures["runs"] == 1
    assert 0 < figures["coldstart_ms"] < figures["with_interpreter_start_ms"]
