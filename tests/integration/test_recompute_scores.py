"""recompute_scores invoked with EventBridge Scheduler and EventBridge rule payloads against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pydantic import ValidationError

from feedcore.db.connection import run
from feedcore.db.scores import RECOMPUTE_LOCK_KEY, try_lock_recompute
from tests.aws_events import LambdaContext, eventbridge_scheduled_event
from tests.conftest import load_function
from tests.factories import NOW, OTHER_STORE, STORE, create_catalog, event, purchase, record

recompute = load_function("recompute_scores")


def popularity(conn: psycopg.Connection, store_id: str) -> dict[str, float]:
    return dict(conn.execute("SELECT item_id, score FROM item_popularity WHERE store_id = %s", (store_id,)))


def test_scheduler_run_scores_popularity_per_store_and_globally(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-1", items=("milk", "eggs")),
        purchase("user-2", items=("milk",)),
        event("add_to_cart", "user-3", item_id="coffee"),
        purchase("user-4", items=("bananas",), store_id=OTHER_STORE),
        event("impression", "user-1", item_id="wine", feed_id="f1", section="trending", position=0),
    )

    result = recompute.lambda_handler({"mode": "full"}, LambdaContext(function_name="recompute_scores"))

    assert result["status"] == "completed"
    assert result["events_scored"] == 5
    store_scores = popularity(db, STORE)
    assert store_scores.keys() == {"milk", "eggs", "coffee"}  # impressions carry no preference
    assert store_scores["milk"] > store_scores["eggs"] > store_scores["coffee"]
    assert popularity(db, "*").keys() == {"milk", "eggs", "coffee", "bananas"}
    assert popularity(db, OTHER_STORE).keys() == {"bananas"}
    assert db.execute("SELECT count(*) FROM score_runs").fetchone()[0] == 1
    users = dict(db.execute("SELECT user_id, home_store_id FROM users").fetchall())
    assert users == {"user-1": STORE, "user-2": STORE, "user-3": STORE, "user-4": OTHER_STORE}


def test_eventbridge_rule_event_runs_the_same_recompute(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))

    result = recompute.lambda_handler(eventbridge_scheduled_event(), LambdaContext())

    assert result["status"] == "completed"
    assert popularity(db, STORE).keys() == {"milk"}


def test_older_events_weigh_less(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-1", items=("milk",), at=NOW - timedelta(days=1)),
        purchase("user-2", items=("eggs",), at=NOW - timedelta(days=30)),
    )
    recompute.lambda_handler({}, LambdaContext())

    scores = popularity(db, STORE)
    # Half-life 7 days: 29 days apart is 2^(29/7) ≈ 17.7 times less weight.
    assert scores["milk"] / scores["eggs"] == pytest.approx(2 ** (29 / 7), rel=0.01)


def test_user_affinity_counts_purchases_and_hides_suppress(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-1", items=("milk", "eggs"), at=NOW - timedelta(days=8)),
        purchase("user-1", items=("milk",), at=NOW - timedelta(days=1)),
        event("click", "user-1", item_id="coffee"),
        event("hide", "user-1", item_id="eggs"),
    )
    recompute.lambda_handler({}, LambdaContext())

    rows = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT item_id, purchase_count, hidden, affinity > 0 FROM user_item_affinity WHERE user_id = 'user-1'"
        )
    }
    assert rows == {"milk": (2, False, True), "eggs": (1, True, True), "coffee": (0, False, True)}


def test_recompute_replaces_scores_of_the_previous_run(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    recompute.lambda_handler({}, LambdaContext())
    db.execute("DELETE FROM events")

    recompute.lambda_handler({}, LambdaContext())

    assert popularity(db, STORE) == {}
    assert db.execute("SELECT count(*) FROM user_item_affinity").fetchone()[0] == 0


def test_overlapping_run_is_skipped(db: psycopg.Connection, database_url: str) -> None:
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,))
        result = recompute.lambda_handler({}, LambdaContext())
    assert result["status"] == "skipped"
    assert db.execute("SELECT count(*) FROM score_runs").fetchone()[0] == 0


def test_malformed_schedule_input_is_rejected(db: psycopg.Connection) -> None:
    with pytest.raises(ValidationError):
        recompute.lambda_handler({"mode": "sideways"}, LambdaContext())


def test_ancient_events_weigh_nothing_instead_of_breaking_the_run(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-1", items=("milk",), at=datetime(1970, 1, 1, tzinfo=UTC)),
        purchase("user-2", items=("eggs",)),
    )

    result = recompute.lambda_handler({}, LambdaContext())

    assert result["status"] == "completed"
    scores = popularity(db, STORE)
    assert scores["milk"] < 1e-300 < scores["eggs"]


def test_the_lock_bounds_statements_and_idle_time_of_the_run(db: psycopg.Connection) -> None:
    def lock_and_read_limits(conn: psycopg.Connection) -> tuple[bool, tuple[str, str]]:
        locked = try_lock_recompute(conn, 5_000)
        limits = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')"
        ).fetchone()
        return locked, limits

    assert run(lock_and_read_limits) == (True, ("5s", "5s"))


def test_the_run_creates_next_months_event_partition_ahead_of_time(db: psycopg.Connection) -> None:
    recompute.lambda_handler({}, LambdaContext())

    next_month = (NOW.replace(day=1) + timedelta(days=32)).strftime("events_%Y_%m")
    assert db.execute("SELECT to_regclass(%s) IS NOT NULL", (next_month,)).fetchone() == (True,)
