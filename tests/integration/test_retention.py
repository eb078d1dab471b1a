"""Retention (feedctl retention, and the daily schedule through the recompute function): old months of events
are dropped whole; recent ones and their dedup state stay."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from feedcore.ingestion.retention import apply_retention
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

    dropped = apply_retention(90)

    assert old_partition in dropped
    assert old_partition not in partitions(db)
    assert [row[0] for row in db.execute("SELECT item_id FROM events")] == ["eggs"]
    assert db.execute("SELECT count(*) FROM event_ids").fetchone()[0] == 1
    assert apply_retention(90) == []


def test_the_daily_schedule_applies_retention_through_the_recompute_function(db: psycopg.Connection) -> None:
    recompute = load_function("recompute_scores")
    old, recent = NOW - timedelta(days=500), NOW - timedelta(days=1)
    record(event("click", item_id="milk", at=old), event("click", item_id="eggs", at=recent))

    # What the EventRetention schedule of template.yaml sends with EventRetentionDays at its default.
    result = recompute.lambda_handler({"keep_days": 400}, LambdaContext(function_name="recompute_scores"))

    assert result == {"dropped_partitions": [f"events_{old:%Y_%m}"]}
    assert [row[0] for row in db.execute("SELECT item_id FROM events")] == ["eggs"]


def test_keep_days_must_exceed_the_late_event_horizon(db: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="late-event horizon"):
        apply_retention(30)
    with pytest.raises(SystemExit, match="late-event horizon"):
        feedctl(["retention", "--keep-days", "7"])
