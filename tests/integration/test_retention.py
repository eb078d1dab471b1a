"""Retention (feedctl retention, and the daily schedule through the recompute function): old months of events
are dropped whole, with their event_ids, span by span; old feed records are deleted; recent ones and their dedup
state stay; a run stopped by its time budget is finished by the next."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timedelta
from itertools import count

import psycopg
import pytest
from pydantic import ValidationError

from feedcore.db import events as events_db
from feedcore.db.connection import run
from feedcore.db.events import delete_event_ids_in_blocks, month_of, month_start, next_month
from feedcore.ingestion import retention
from feedcore.ingestion.retention import RetentionResult, apply_retention
from feedcore.scoring import trigger
from feedlocal import embedded
from feedlocal.cli import main as feedctl
from tests.aws_events import LambdaContext
from tests.conftest import load_function
from tests.factories import NOW, event, record


def partitions(conn: psycopg.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass ORDER BY 1"
        )
    ]


def test_partitions_older_than_keep_days_are_dropped(db: psycopg.Connection) -> None:
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=1)
    record(event("click", item_id="milk", at=old), event("click", item_id="eggs", at=recent))
    old_partition = f"events_{old:%Y_%m}"
    assert old_partition in partitions(db)

    result = apply_retention(90)

    assert result.status == "completed" and old_partition in result.dropped_partitions
    assert result.event_ids_deleted == 1
    assert old_partition not in partitions(db)
    assert [row[0] for row in db.execute("SELECT item_id FROM events")] == ["eggs"]
    assert db.execute("SELECT count(*) FROM event_ids").fetchone()[0] == 1
    assert apply_retention(90) == RetentionResult()


def test_retention_summarizes_the_block_ranges_autosummarize_left(db: psycopg.Connection) -> None:
    # Ranges filled at once, with no autovacuum visit since (migration 0126); the last, partly filled one is left to
    # the next run, as summarizing it would be redone as it fills.
    at = NOW - timedelta(days=1)
    record(event("click", item_id="milk", at=at))
    db.execute(
        "INSERT INTO events (event_id, occurred_at, event_type, user_id, store_id, item_id)"
        " SELECT gen_random_uuid(), %s, 'click', 'user-' || n, 'store-1', 'milk' FROM generate_series(1, 20000) AS n",
        (at,),
    )
    unsummarized = (
        "SELECT sum(brin_summarize_new_values(i.indexrelid)) FROM pg_inherits p"
        " JOIN pg_index i ON i.indrelid = p.inhrelid JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am a ON a.oid = c.relam WHERE p.inhparent = 'events'::regclass AND a.amname = 'brin'"
    )

    result = apply_retention(90)

    assert result.status == "completed" and result.ranges_summarized >= 1
    assert db.execute(unsummarized).fetchone()[0] == 0  # nothing left to summarize


def test_a_month_another_run_dropped_since_this_one_listed_it_counts_as_dropped(db: psycopg.Connection) -> None:
    record(event("click", item_id="milk", at=NOW - timedelta(days=200)))
    # What a second run lists at its start, while the first is about to drop it.
    (listed,) = run(lambda conn: events_db.partitions_ending_by(conn, cutoff=NOW - timedelta(days=90)))
    assert apply_retention(90).dropped_partitions == [listed.name]  # the first run

    assert run(lambda conn: events_db.drop_partition(conn, listed)) is True  # the second's DROP: done, no error
    assert listed.name not in partitions(db)


def test_the_daily_schedule_applies_retention_through_the_recompute_function(db: psycopg.Connection) -> None:
    recompute = load_function("recompute_scores")
    old, recent = NOW - timedelta(days=500), NOW - timedelta(days=1)
    record(event("click", item_id="milk", at=old), event("click", item_id="eggs", at=recent))

    # What the EventRetention schedule of template.yaml sends with EventRetentionDays at its default.
    # The recompute function's timeout in template.yaml is 300 s.
    context = LambdaContext(function_name="recompute_scores", remaining_time_ms=300_000)
    result = recompute.lambda_handler({"keep_days": 400}, context)

    assert result == {
        "status": "completed",
        "dropped_partitions": [f"events_{old:%Y_%m}"],
        "event_ids_deleted": 1,
        "feeds_deleted": 0,
        "ranges_summarized": 0,  # two events fill no block range
    }
    assert [row[0] for row in db.execute("SELECT item_id FROM events")] == ["eggs"]


def test_keep_days_must_exceed_the_late_event_horizon(db: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="late-event horizon"):
        apply_retention(30)
    with pytest.raises(
        SystemExit, match=r"^feedctl retention: keep-days must exceed the late-event horizon \(30 days\)$"
    ):
        feedctl(["retention", "--keep-days", "7"])


@pytest.mark.parametrize("keep_days", [36_501, 800_000, 10**12])
def test_keep_days_beyond_a_century_are_refused_by_name(
    db: psycopg.Connection, keep_days: int, capsys: pytest.CaptureFixture
) -> None:
    # 800,000 days ago is before year 1 (OverflowError); 10**12 does not fit a timedelta at all.
    with pytest.raises(ValidationError, match="keep_days\n  Input should be less than or equal to 36500"):
        load_function("recompute_scores").lambda_handler({"keep_days": keep_days}, LambdaContext())
    with pytest.raises(SystemExit) as refused:
        feedctl(["retention", "--keep-days", str(keep_days)])
    assert refused.value.code == 2
    assert f"argument --keep-days: must be at most 36500, not {keep_days}" in capsys.readouterr().err


def record_feed(db: psycopg.Connection, feed_id: str, created_at: datetime) -> None:
    db.execute(
        "INSERT INTO feeds (feed_id, user_id, store_id, variant, created_at) "
        "VALUES (%s, 'user-1', 'store-1', 'control', %s)",
        (feed_id, created_at),
    )


def test_old_feed_records_are_deleted_whatever_their_age(db: psycopg.Connection) -> None:
    cutoff = NOW - timedelta(days=90)
    for feed_id, created_at in [
        ("long-ago", cutoff - timedelta(days=30, minutes=7)),  # a run that failed for weeks leaves older records
        ("just-before", cutoff - timedelta(seconds=1)),
        ("at-cutoff", cutoff),
        ("recent", NOW - timedelta(days=1)),
    ]:
        record_feed(db, feed_id, created_at)

    result = apply_retention(90, now=NOW)

    assert result.feeds_deleted == 2
    assert [row[0] for row in db.execute("SELECT feed_id FROM feeds ORDER BY 1")] == ["at-cutoff", "recent"]


def test_feeds_keeps_only_the_indexes_something_reads(db: psycopg.Connection) -> None:
    # attribution joins by feed_id, erasure finds a user's by user_id; retention reads block ranges (TID range
    # scans), not the BRIN on created_at that migration 0086 dropped
    indexes = db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'feeds' ORDER BY 1").fetchall()

    assert [row[0] for row in indexes] == ["feeds_pkey", "feeds_user_idx"]


def test_a_run_stopped_by_its_time_budget_is_finished_by_the_next(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = NOW - timedelta(days=200)
    # 400 old ids fill three blocks of event_ids; a run deletes one block per statement here.
    record(*(event("click", item_id="milk", at=old + timedelta(minutes=i)) for i in range(400)))
    record(event("click", item_id="eggs", at=NOW - timedelta(days=1)))
    record_feed(db, "old", NOW - timedelta(days=100))
    monkeypatch.setattr(retention, "PURGE_BLOCKS", 1)
    old_ids = "SELECT count(*) FROM event_ids WHERE occurred_at < %s"
    # Each look at the clock is one second later: a budget of 2.5 s lets the run delete two blocks.
    clock = count()
    monkeypatch.setattr(retention, "monotonic", lambda: next(clock))

    stopped = apply_retention(90, time_budget_ms=2_500)

    assert stopped.status == "partial" and stopped.dropped_partitions == []
    assert 0 < stopped.event_ids_deleted < 400
    assert db.execute(old_ids, (NOW - timedelta(days=90),)).fetchone()[0] == 400 - stopped.event_ids_deleted
    assert f"events_{old:%Y_%m}" in partitions(db)
    assert db.execute("SELECT count(*) FROM feeds").fetchone()[0] == 1

    monkeypatch.setattr(retention, "monotonic", lambda: 0)
    finished = apply_retention(90)

    assert finished.status == "completed" and f"events_{old:%Y_%m}" in finished.dropped_partitions
    assert (finished.event_ids_deleted, finished.feeds_deleted) == (400 - stopped.event_ids_deleted, 1)
    assert [row[0] for row in db.execute("SELECT item_id FROM events")] == ["eggs"]
    assert db.execute("SELECT count(*) FROM event_ids").fetchone()[0] == 1


def test_the_ids_of_the_first_kept_month_stay(db: psycopg.Connection) -> None:
    first_kept_month = month_of(NOW - timedelta(days=90))  # it ends after the cutoff; the month before ends by it
    kept_from = month_start(first_kept_month)
    record(
        event("click", item_id="milk", at=kept_from - timedelta(seconds=1)),
        event("click", item_id="eggs", at=kept_from),
    )

    result = apply_retention(90, now=NOW)

    assert result.event_ids_deleted == 1
    assert db.execute("SELECT occurred_at FROM event_ids").fetchall() == [(kept_from,)]
    assert [row[0] for row in db.execute("SELECT item_id FROM events")] == ["eggs"]


def test_expired_ids_are_read_by_block_range_even_where_the_table_is_in_time_order(db: psycopg.Connection) -> None:
    # A small table stored in time order, its oldest ids expired: where a time index could narrow the delete,
    # the span is still read by its blocks alone.
    db.execute(
        "INSERT INTO event_ids SELECT gen_random_uuid(), %s - interval '1 minute' * (100000 - n) "
        "FROM generate_series(1, 100000) AS n",
        (NOW,),
    )
    db.execute("ANALYZE event_ids")
    plans = []

    class Explained:
        """The connection delete_event_ids_in_blocks is given: it plans its statement instead of running it."""

        def execute(self, query: str, params: tuple) -> psycopg.Cursor:
            cursor = db.execute(f"EXPLAIN {query}", params)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
            return cursor

    delete_event_ids_in_blocks(Explained(), 0, retention.PURGE_BLOCKS, NOW - timedelta(days=50))

    assert "Tid Range Scan on event_ids" in plans[0], plans[0]


def test_the_schedule_given_no_time_stops_before_deleting_anything(
    db: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    recompute = load_function("recompute_scores")
    record(event("click", item_id="milk", at=NOW - timedelta(days=500)))

    # No more time left than the handler keeps back to finish.
    context = LambdaContext(function_name="recompute_scores", remaining_time_ms=trigger.SAFETY_MARGIN_MS)
    capsys.readouterr()
    result = recompute.lambda_handler({"keep_days": 400}, context)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]

    assert result["status"] == "partial" and result["dropped_partitions"] == []
    assert db.execute("SELECT count(*) FROM event_ids").fetchone()[0] == 1
    # What template.yaml's RetentionIncompleteAlarm watches: the metric, its namespace and its service dimension
    # (POWERTOOLS_SERVICE_NAME, recompute_scores in the stack).
    [blob] = [blob for blob in emitted if "RetentionIncomplete" in blob]
    assert blob["RetentionIncomplete"] == [1.0] and blob["service"] == os.environ["POWERTOOLS_SERVICE_NAME"]
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "FeedAssembly" and directive["Dimensions"] == [["service"]]


def test_feedctl_retention_says_what_it_removed_and_leaves_a_given_database_unmigrated(
    db: psycopg.Connection, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = NOW - timedelta(days=200)
    record(event("click", item_id="milk", at=old), event("click", item_id="eggs", at=old + timedelta(hours=7)))
    # DATABASE_URL is set (the test database): an operator's database is never migrated from their checkout.
    monkeypatch.setattr(embedded, "migrate_database", lambda url: pytest.fail(f"migrated {url}"))

    feedctl(["retention", "--keep-days", "90"])

    # Earlier tests may leave empty partitions of old months (emptying the tables between tests keeps them).
    printed = capsys.readouterr().out
    assert re.search(
        rf"dropped \d+ event partitions \(.*events_{old:%Y_%m}.*\), 2 event ids and 0 feed records", printed
    )


def test_a_drop_that_waits_for_a_long_reader_gives_up_soon_and_the_run_says_so(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = NOW - timedelta(days=200)
    record(event("click", item_id="milk", at=old))
    record_feed(db, "old", NOW - timedelta(days=100))
    pauses: list[float] = []
    monkeypatch.setattr(retention, "sleep", pauses.append)
    tries: list[float] = []  # how long each try took
    drop_partition = retention.events_db.drop_partition

    def timed_drop(*args: object, **kwargs: object) -> bool:
        started = time.monotonic()
        try:
            return drop_partition(*args, **kwargs)
        finally:
            tries.append(time.monotonic() - started)

    monkeypatch.setattr(retention.events_db, "drop_partition", timed_drop)
    with psycopg.connect(database_url) as reader:  # a full rebuild holds the event log for minutes
        reader.execute("SELECT count(*) FROM events")

        result = apply_retention(90)

    assert result.status == "partial" and result.dropped_partitions == [] and result.event_ids_deleted == 1
    assert result.feeds_deleted == 1  # old feed records go all the same
    assert pauses == [retention.DROP_RETRY_PAUSE_S] * (retention.DROP_ATTEMPTS - 1)
    # Five tries, each given up after its DROP waited 200 ms for the lock, far short of the statement timeout (2 s).
    assert len(tries) == retention.DROP_ATTEMPTS and all(0.2 <= t < 1 for t in tries), tries
    assert f"events_{old:%Y_%m}" in partitions(db)
    first_blocks = blocks_read(monkeypatch, retention.events_db, "delete_event_ids_in_blocks")
    retried = apply_retention(90)  # the next run, the log free, drops it
    assert f"events_{old:%Y_%m}" in retried.dropped_partitions
    assert first_blocks == [] and retried.event_ids_deleted == 0  # its ids were gone: no second pass


def test_a_run_out_of_time_after_the_ids_drops_nothing(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    old = NOW - timedelta(days=200)
    record(event("click", item_id="milk", at=old))
    # Each look at the clock is one second later: 1.5 s is enough for event_ids' one block, not for a drop.
    clock = count()
    monkeypatch.setattr(retention, "monotonic", lambda: next(clock))

    result = apply_retention(90, time_budget_ms=1_500)

    assert result == RetentionResult(status="partial", event_ids_deleted=1)
    assert f"events_{old:%Y_%m}" in partitions(db)


def blocks_read(monkeypatch: pytest.MonkeyPatch, module: object, delete: str) -> list[int]:
    """The first block of each range `module.delete` is asked to delete from, in order."""
    first_blocks: list[int] = []
    real = getattr(module, delete)

    def spy(conn: psycopg.Connection, first_block: int, blocks: int, before: datetime) -> int:
        first_blocks.append(first_block)
        return real(conn, first_block=first_block, blocks=blocks, before=before)

    monkeypatch.setattr(module, delete, spy)
    return first_blocks


def saved_pass(db: psycopg.Connection, table: str) -> tuple | None:
    return db.execute(
        "SELECT cutoff, next_block, end_block FROM retention_passes WHERE table_name = %s", (table,)
    ).fetchone()


def ids_by_month(db: psycopg.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT to_char(occurred_at, 'YYYY_MM'), count(*) FROM event_ids GROUP BY 1").fetchall())


def test_a_pass_cut_short_goes_on_from_where_it_stopped_and_the_runs_delete_exactly_the_expired_ids(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=1)
    # 500 old and 500 recent ids, mixed over seven blocks of event_ids (stored in event_id order); a run deletes one
    # block per statement here, and each look at the clock is one second later.
    record(*(event("click", item_id="milk", at=at + timedelta(seconds=i)) for i in range(500) for at in (old, recent)))
    kept = db.execute("SELECT event_id FROM event_ids WHERE occurred_at >= %s ORDER BY 1", (recent,)).fetchall()
    blocks = db.execute("SELECT pg_relation_size('event_ids') / 8192").fetchone()[0]
    assert blocks >= 6
    monkeypatch.setattr(retention, "PURGE_BLOCKS", 1)
    first_blocks = blocks_read(monkeypatch, retention.events_db, "delete_event_ids_in_blocks")
    clock = count()
    monkeypatch.setattr(retention, "monotonic", lambda: next(clock))

    first = apply_retention(90, now=NOW, time_budget_ms=2_500)  # two ranges
    assert saved_pass(db, "event_ids")[1:] == (2, blocks)
    clock = count()
    second = apply_retention(90, now=NOW, time_budget_ms=3_500)  # three more
    assert saved_pass(db, "event_ids")[1:] == (5, blocks)
    monkeypatch.setattr(retention, "monotonic", lambda: 0)
    third = apply_retention(90, now=NOW)

    assert (first.status, second.status, third.status) == ("partial", "partial", "completed")
    assert first_blocks == list(range(blocks))  # each block once: the second and third runs went on from the saved one
    assert first.event_ids_deleted + second.event_ids_deleted + third.event_ids_deleted == 500
    assert db.execute("SELECT event_id FROM event_ids ORDER BY 1").fetchall() == kept
    assert f"events_{old:%Y_%m}" in third.dropped_partitions and f"events_{old:%Y_%m}" not in partitions(db)
    assert db.execute("SELECT count(*), min(occurred_at) FROM events").fetchone() == (500, recent)


def test_a_complete_pass_is_followed_by_a_fresh_one_from_the_first_block_once_the_cutoff_moves(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Feed records ten minutes apart over 20 days around the cutoff, in no order over the table's blocks.
    db.execute(
        "INSERT INTO feeds (feed_id, user_id, store_id, variant, created_at) "
        "SELECT 'feed-' || i, 'user-1', 'store-1', 'control', %s + interval '10 minutes' * i "
        "FROM generate_series(0, 20 * 24 * 6 - 1) AS i ORDER BY random()",
        (NOW - timedelta(days=100),),
    )
    blocks = db.execute("SELECT pg_relation_size('feeds') / 8192").fetchone()[0]
    assert blocks >= 3
    monkeypatch.setattr(retention, "PURGE_BLOCKS", 1)
    first_blocks = blocks_read(monkeypatch, retention.feed_db, "delete_feeds_in_blocks")

    today = apply_retention(90, now=NOW)

    assert saved_pass(db, "feeds") == (NOW - timedelta(days=90), blocks, blocks)  # done: clear below its cutoff
    assert apply_retention(90, now=NOW) == RetentionResult()  # the same cutoff: nothing left to read
    assert first_blocks == list(range(blocks))

    tomorrow = apply_retention(90, now=NOW + timedelta(days=5))

    assert first_blocks == list(range(blocks)) * 2
    assert (today.feeds_deleted, tomorrow.feeds_deleted) == (10 * 24 * 6, 5 * 24 * 6)
    assert db.execute("SELECT min(created_at) FROM feeds").fetchone()[0] == NOW - timedelta(days=85)


def test_a_later_cutoff_does_not_skip_the_ids_behind_the_pass(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The month that expires between the two runs: kept by the first, its ids spread over every block.
    month = month_of(NOW - timedelta(days=90))
    month_end = month_start(next_month(month))
    later = month_end + timedelta(days=90)  # the second run's day: the month ends by its cutoff
    expired, expiring, recent = NOW - timedelta(days=200), month_start(month), NOW - timedelta(days=1)
    record(
        *(
            event("click", item_id="milk", at=at + timedelta(seconds=i))
            for i in range(300)
            for at in (expired, expiring, recent)
        )
    )
    blocks = db.execute("SELECT pg_relation_size('event_ids') / 8192").fetchone()[0]
    monkeypatch.setattr(retention, "PURGE_BLOCKS", 1)
    first_blocks = blocks_read(monkeypatch, retention.events_db, "delete_event_ids_in_blocks")
    clock = count()
    monkeypatch.setattr(retention, "monotonic", lambda: next(clock))

    stopped = apply_retention(90, now=NOW, time_budget_ms=2_500)  # two ranges: the ids of `expired` only
    monkeypatch.setattr(retention, "monotonic", lambda: 0)
    finished = apply_retention(90, now=later)

    assert stopped.status == "partial" and finished.status == "completed"
    # The saved pass ends with its own cutoff, then a fresh one from the first block removes the month expired since.
    assert first_blocks == [0, 1, *range(2, blocks), *range(blocks)]
    assert ids_by_month(db) == {f"{recent:%Y_%m}": 300}
    assert {f"events_{expired:%Y_%m}", f"events_{expiring:%Y_%m}"} <= set(finished.dropped_partitions)
    assert stopped.event_ids_deleted + finished.event_ids_deleted == 600
    assert saved_pass(db, "event_ids") == (month_end, blocks, blocks)


def test_an_earlier_cutoff_is_kept_by_the_rest_of_the_pass(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # keep-days raised while a pass is under way: its remaining blocks keep what the new setting keeps.
    old, older, recent = NOW - timedelta(days=130), NOW - timedelta(days=400), NOW - timedelta(days=1)
    record(
        *(
            event("click", item_id="milk", at=at + timedelta(seconds=i))
            for i in range(300)
            for at in (old, older, recent)
        )
    )
    monkeypatch.setattr(retention, "PURGE_BLOCKS", 1)
    first_blocks = blocks_read(monkeypatch, retention.events_db, "delete_event_ids_in_blocks")
    clock = count()
    monkeypatch.setattr(retention, "monotonic", lambda: next(clock))

    apply_retention(90, now=NOW, time_budget_ms=2_500)  # two ranges, both months expired
    behind = "SELECT count(*) FROM event_ids WHERE occurred_at < %s AND ctid < '(2,0)'::tid"
    assert db.execute(behind, (recent,)).fetchone()[0] == 0
    old_ids_left = ids_by_month(db)[f"{old:%Y_%m}"]
    monkeypatch.setattr(retention, "monotonic", lambda: 0)
    raised = apply_retention(300, now=NOW)  # only `older` expired

    assert first_blocks[:3] == [0, 1, 2]  # the pass went on
    assert ids_by_month(db) == {f"{old:%Y_%m}": old_ids_left, f"{recent:%Y_%m}": 300}
    assert f"events_{older:%Y_%m}" in raised.dropped_partitions and f"events_{old:%Y_%m}" in partitions(db)


def test_a_run_with_nothing_expired_changes_nothing_and_reads_no_event_ids(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_retention(90, now=NOW)  # earlier tests' empty old months (emptying the tables keeps partitions)
    db.execute("TRUNCATE retention_passes")
    record(*(event("click", item_id="milk", at=NOW - timedelta(days=80, seconds=i)) for i in range(200)))
    record_feed(db, "recent", NOW - timedelta(days=80))
    before = partitions(db)
    first_blocks = blocks_read(monkeypatch, retention.events_db, "delete_event_ids_in_blocks")

    result = apply_retention(90, now=NOW)

    assert result == RetentionResult()
    assert first_blocks == [] and saved_pass(db, "event_ids") is None
    assert partitions(db) == before
    counts = "SELECT (SELECT count(*) FROM event_ids), (SELECT count(*) FROM events), (SELECT count(*) FROM feeds)"
    assert db.execute(counts).fetchone() == (200, 200, 1)


def test_a_run_that_finds_its_pass_moved_by_another_stops_there(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = NOW - timedelta(days=200)
    record(*(event("click", item_id="milk", at=old + timedelta(seconds=i)) for i in range(400)))
    monkeypatch.setattr(retention, "PURGE_BLOCKS", 1)
    clock = count()
    monkeypatch.setattr(retention, "monotonic", lambda: next(clock))
    apply_retention(90, now=NOW, time_budget_ms=1_500)  # one range
    saved = saved_pass(db, "event_ids")
    load_pass = retention.retention_db.load_pass

    def read_while_another_run_moves_the_pass(conn: psycopg.Connection, table: str):
        read = load_pass(conn, table)
        if table == "event_ids":  # another run (its own connection) commits the next range meanwhile
            db.execute("UPDATE retention_passes SET next_block = 2 WHERE table_name = 'event_ids'")
        return read

    monkeypatch.setattr(retention.retention_db, "load_pass", read_while_another_run_moves_the_pass)
    monkeypatch.setattr(retention, "monotonic", lambda: 0)

    result = apply_retention(90, now=NOW)

    assert result.status == "partial" and result.event_ids_deleted == 0 and result.dropped_partitions == []
    assert saved_pass(db, "event_ids") == (saved[0], 2, saved[2])  # the other run's position stands
    assert f"events_{old:%Y_%m}" in partitions(db)
