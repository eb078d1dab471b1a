"""recompute_scores invoked with EventBridge Scheduler and EventBridge rule payloads against the real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from time import monotonic, sleep

import psycopg
import pytest
from moto import mock_aws
from pydantic import ValidationError

from feedcore import settings
from feedcore.api.event_fast_path import event_structs
from feedcore.api.event_models import EventBatch
from feedcore.db import catalog as catalog_db
from feedcore.db import model_files
from feedcore.db import scores as scores_db
from feedcore.db.connection import run
from feedcore.db.events import store_events
from feedcore.db.scores import RECOMPUTE_LOCK_KEY, try_lock_recompute
from feedcore.ingestion.service import ingest_batch
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from feedlocal.cli import main as feedctl
from tests.aws_events import LambdaContext, eventbridge_scheduled_event
from tests.conftest import load_function
from tests.factories import EVENT, ITEMS, NOW, OTHER_STORE, STORE, create_catalog, event, purchase, record

recompute = load_function("recompute_scores")
# Half-lives other than the defaults (7, 60, 30 and 90 days, 24 hours): a score decayed with a default rather than its
# setting fails the tests that set these.
HALF_LIVES = {
    "SCORING_POPULARITY_HALF_LIFE_DAYS": "3",
    "SCORING_AFFINITY_HALF_LIFE_DAYS": "12",
    "SCORING_BUY_AGAIN_HALF_LIFE_DAYS": "2",
    "SCORING_TRENDING_HALF_LIFE_HOURS": "36",
    "SCORING_PAIRS_HALF_LIFE_DAYS": "6",
}


def use_scoring_settings(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings.scoring_settings.cache_clear()


def popularity(conn: psycopg.Connection, store_id: str) -> dict[str, float]:
    rows = conn.execute("SELECT item_id, raw_score FROM item_popularity WHERE store_id = %s", (store_id,))
    return dict(rows.fetchall())


def decayed_scores(conn: psycopg.Connection, at: datetime) -> dict[str, dict]:
    """Every score as of `at`, independent of the epoch the raw values are kept against."""
    (epoch,) = conn.execute("SELECT epoch FROM score_state").fetchone()
    age = (at - epoch).total_seconds()
    scoring = settings.scoring_settings()  # the half-lives the run decayed with

    def decay(half_life_days: float) -> float:
        return 2 ** (-age / (half_life_days * 86_400))

    tables = {
        "popularity": conn.execute(
            "SELECT store_id || '/' || item_id, ARRAY[raw_score * %s, short_raw * %s, trending_score]"
            " FROM item_popularity",
            (decay(scoring.popularity_half_life_days), decay(scoring.trending_half_life_hours / 24)),
        ),
        "affinity": conn.execute(
            """
            SELECT user_id || '/' || item_id,
                   ARRAY[affinity_raw * %s, purchase_raw * %s],
                   ARRAY[purchase_count::text, first_purchased_at::text, last_purchased_at::text,
                         last_positive_at::text, last_hidden_at::text, hidden::text]
            FROM user_item_affinity
            """,
            (decay(scoring.affinity_half_life_days), decay(scoring.buy_again_half_life_days)),
        ),
        "baskets": conn.execute(
            "SELECT item_id, ARRAY[basket_raw * %s], basket_count FROM item_baskets",
            (decay(scoring.pairs_half_life_days),),
        ),
        "pair_counts": conn.execute(
            # Named by the two items in byte order: the keys (and so which item is first in a row) are numbered
            # in the order the items were first seen, and afresh by a full rebuild.
            "SELECT least(a.item_id, b.item_id) || '/' || greatest(a.item_id, b.item_id), ARRAY[c.pair_raw * %s],"
            " c.pair_count FROM item_pair_counts c"
            " JOIN item_baskets a ON a.item_key = c.item_key JOIN item_baskets b ON b.item_key = c.paired_item_key",
            (decay(scoring.pairs_half_life_days),),
        ),
        "pairs": conn.execute(
            "SELECT item_id || '/' || paired_item_id, ARRAY[pair_raw * %s, score] FROM item_pairs",
            (decay(scoring.pairs_half_life_days),),
        ),
        "orders": conn.execute("SELECT user_id, ARRAY[]::float8[], ordered_at FROM user_orders"),
        "reorders": conn.execute("SELECT item_id, ARRAY[]::float8[], order_count, buyer_count FROM item_reorders"),
    }
    return {name: {row[0]: row[1:] for row in rows.fetchall()} for name, rows in tables.items()}


def assert_same_scores(left: dict[str, dict], right: dict[str, dict]) -> None:
    """Equal keys, equal history, scores equal up to floating-point summation order."""
    for table in left:
        assert left[table].keys() == right[table].keys(), table
        for key, (scores, *history) in left[table].items():
            other_scores, *other_history = right[table][key]
            assert history == other_history, (table, key)
            assert scores == pytest.approx(other_scores, rel=1e-9), (table, key)


def test_scheduler_run_scores_popularity_per_store_and_globally(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-1", items=("milk", "eggs")),
        purchase("user-2", items=("milk",)),
        event("add_to_cart", "user-3", item_id="coffee"),
        purchase("user-4", items=("bananas",), store_id=OTHER_STORE),
        event("impression", "user-1", item_id="wine", feed_id="f1", section="trending", position=0),
    )

    result = recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert result["status"] == "completed"
    assert result["events_scored"] == 4  # impressions carry no preference
    store_scores = popularity(db, STORE)
    assert store_scores.keys() == {"milk", "eggs", "coffee"}
    assert store_scores["milk"] > store_scores["eggs"] > store_scores["coffee"]
    assert popularity(db, "*").keys() == {"milk", "eggs", "coffee", "bananas"}
    assert popularity(db, OTHER_STORE).keys() == {"bananas"}
    assert db.execute("SELECT count(*) FROM score_runs").fetchone()[0] == 1
    users = dict(db.execute("SELECT user_id, home_store_id FROM users").fetchall())
    assert users == {"user-1": STORE, "user-2": STORE, "user-3": STORE, "user-4": OTHER_STORE}


def test_eventbridge_rule_event_runs_the_same_recompute(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))

    result = recompute.lambda_handler(eventbridge_scheduled_event({"mode": "full"}), LambdaContext())

    assert (result["status"], result["mode"]) == ("completed", "full")
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
    assert scores["milk"] / scores["eggs"] == pytest.approx(2 ** (29 / 7), rel=1e-6)


def test_user_item_history_counts_purchases_and_hides_suppress(db: psycopg.Connection) -> None:
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
            "SELECT item_id, purchase_count, hidden, affinity_raw > 0, last_purchased_at - first_purchased_at "
            "FROM user_item_affinity WHERE user_id = 'user-1'"
        )
    }
    assert rows == {
        "milk": (2, False, True, timedelta(days=7)),
        "eggs": (1, True, True, timedelta(0)),
        "coffee": (0, False, True, None),
    }


def test_no_run_stores_aisle_affinities_the_feed_sums_them_from_the_item_rows(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), event("click", "user-1", item_id="coffee"))
    recompute_scores(RecomputeRequest())
    record(purchase("user-2", items=("bananas",)))
    recompute_scores(RecomputeRequest())
    incremental = db.execute("SELECT count(*) FROM user_category_affinity").fetchone()

    recompute_scores(RecomputeRequest(mode="full"))

    # Migration 0096: code from before it still writes the table; this code neither writes nor rebuilds it.
    assert incremental == db.execute("SELECT count(*) FROM user_category_affinity").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM user_item_affinity WHERE affinity_raw > 0").fetchone() == (4,)


def test_orders_are_counted_per_user_and_per_item_each_once(db: psycopg.Connection) -> None:
    create_catalog(db)
    days = [NOW - timedelta(days=n) for n in (9, 6, 3)]
    record(
        purchase("user-1", items=("milk", "milk", "eggs"), at=days[0]),  # an order that repeats an item
        purchase("user-1", items=("milk",), at=days[1]),
        event("click", "user-1", item_id="coffee", at=days[1]),
        purchase("user-2", items=("milk",), at=days[1]),
    )
    recompute_scores(RecomputeRequest(), now=NOW)
    # Later: an order placed before the ones scored, and the same order sent twice (two events, one instant).
    record(purchase("user-1", items=("eggs",), at=days[0] - timedelta(days=1)))
    record(purchase("user-1", items=("coffee",), at=days[2]), purchase("user-1", items=("coffee",), at=days[2]))
    recompute_scores(RecomputeRequest(), now=NOW)
    incremental = decayed_scores(db, NOW)

    recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    orders = dict(db.execute("SELECT user_id, ordered_at FROM user_orders").fetchall())
    assert orders == {"user-1": [days[0] - timedelta(days=1), *days], "user-2": [days[1]]}
    counts = dict(db.execute("SELECT item_id, purchase_count FROM user_item_affinity WHERE user_id = 'user-1'"))
    assert counts == {"milk": 2, "eggs": 2, "coffee": 1}
    assert_same_scores(incremental, decayed_scores(db, NOW))


def test_a_run_scores_only_the_events_committed_since_the_last_one(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), purchase("user-2", items=("milk",)))
    assert recompute.lambda_handler({}, LambdaContext())["events_scored"] == 2

    record(purchase("user-3", items=("eggs",)))
    second = recompute.lambda_handler({}, LambdaContext())
    third = recompute.lambda_handler({}, LambdaContext())

    assert (second["events_scored"], third["events_scored"]) == (1, 0)
    assert db.execute("SELECT count(*) FROM user_item_affinity WHERE user_id = 'user-3'").fetchone()[0] == 1


def test_incremental_runs_with_late_and_in_flight_events_equal_a_full_rebuild(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_PAIRS_MIN_SUPPORT", "1")  # every pair bought together is scored
    settings.scoring_settings.cache_clear()
    create_catalog(db)
    record(
        purchase("user-1", items=("milk", "eggs"), at=NOW - timedelta(days=20)),
        event("hide", "user-2", item_id="milk", at=NOW - timedelta(days=2)),
    )
    recompute_scores(RecomputeRequest(), now=NOW)
    # An ingest transaction stores a late event but has not committed while the next run happens, and
    # events committed after it started are recorded meanwhile.
    late = EVENT.validate_python(purchase("user-1", items=("milk",), at=NOW - timedelta(days=25)))
    with psycopg.connect(database_url) as in_flight:
        store_events(in_flight, event_structs([late]))
        record(purchase("user-2", items=("milk", "coffee"), at=NOW - timedelta(hours=3)))
        while_in_flight = recompute_scores(RecomputeRequest(), now=NOW)
    after_commit = recompute_scores(RecomputeRequest(), now=NOW)
    # The committed event is not held back by the open transaction; the open one's event is not lost.
    assert (while_in_flight.events_scored, after_commit.events_scored) == (1, 1)
    record(event("add_to_cart", "user-3", item_id="bananas"), event("click", "user-2", item_id="eggs"))
    recompute_scores(RecomputeRequest(), now=NOW)
    recompute_scores(RecomputeRequest(), now=NOW)
    incremental = decayed_scores(db, NOW)

    recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    assert_same_scores(incremental, decayed_scores(db, NOW))
    assert len(incremental["pairs"]) == 4  # milk–eggs and milk–coffee, both ways
    assert db.execute("SELECT purchase_count FROM user_item_affinity WHERE item_id = 'milk' AND user_id = 'user-1'"
                      ).fetchone() == (2,)  # fmt: skip
    # Milk: user-1's two orders (one late) and user-2's, who had hidden it before: three orders, two buyers.
    assert incremental["reorders"] == {"milk": ([], 3, 2), "eggs": ([], 1, 1), "coffee": ([], 1, 1)}


def test_a_backlog_is_scored_in_chunks_that_each_commit(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)  # sets the watermark
    for user in range(6):  # six transactions: chunks cut between them
        record(purchase(f"user-{user}", items=("milk", "eggs")))
    monkeypatch.setenv("SCORING_CHUNK_EVENTS", "2")
    settings.scoring_settings.cache_clear()

    result = recompute_scores(RecomputeRequest(), now=NOW)

    assert (result.status, result.chunks, result.events_scored) == ("completed", 3, 6)
    chunked = decayed_scores(db, NOW)
    assert chunked["pairs"].keys() == {"milk/eggs", "eggs/milk"}  # reached the minimum support in a later chunk
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert_same_scores(chunked, decayed_scores(db, NOW))


def test_a_run_out_of_time_stops_between_chunks_and_the_next_continues(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    recompute_scores(RecomputeRequest(), now=NOW)
    for user in range(4):
        record(purchase(f"user-{user}", items=("milk",)))
    monkeypatch.setenv("SCORING_CHUNK_EVENTS", "1")
    settings.scoring_settings.cache_clear()

    first = recompute_scores(RecomputeRequest(), now=NOW, time_budget_ms=0)
    rest = recompute_scores(RecomputeRequest(), now=NOW)

    assert (first.status, first.chunks, first.events_scored) == ("partial", 1, 1)
    assert (rest.status, rest.events_scored) == ("completed", 3)


def test_a_chunk_is_cut_in_the_order_of_transaction_ids_also_across_a_power_of_ten(db: psycopg.Connection) -> None:
    create_catalog(db)
    for user in range(4):
        record(purchase(f"user-{user}", items=("milk",)))
    db.execute("UPDATE events SET insert_xid = (998 + right(user_id, 1)::int)::text::xid8")  # 998, 999, 1000, 1001
    since = datetime(2000, 1, 1, tzinfo=UTC)

    chunk = scores_db.next_chunk(db, scores_db.EMPTY_SNAPSHOT, "1002:1002:", scores_db.FIRST_XID, since, 1)

    assert (chunk.xid_from, chunk.xid_to, chunk.complete) == (scores_db.FIRST_XID, "999", False)


def test_rebasing_the_epoch_keeps_every_decayed_score(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    use_scoring_settings(monkeypatch, HALF_LIVES | {"SCORING_PAIRS_MIN_SUPPORT": "1"})
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs"), at=NOW - timedelta(days=3)), event("click", item_id="coffee"))
    recompute_scores(RecomputeRequest(), now=NOW)
    db.execute("UPDATE score_state SET epoch = epoch - interval '2400 hours'")
    db.execute(
        "UPDATE item_popularity SET raw_score = raw_score * 2 ^ (100.0 / 3), short_raw = short_raw * 2 ^ (2400.0 / 36);"
        "UPDATE user_item_affinity SET affinity_raw = affinity_raw * 2 ^ (100.0 / 12),"
        " purchase_raw = purchase_raw * 2 ^ (100.0 / 2);"
        "UPDATE item_baskets SET basket_raw = basket_raw * 2 ^ (100.0 / 6),"
        " rescored_basket_raw = rescored_basket_raw * 2 ^ (100.0 / 6);"
        "UPDATE item_pair_counts SET pair_raw = pair_raw * 2 ^ (100.0 / 6);"
        "UPDATE item_pairs SET pair_raw = pair_raw * 2 ^ (100.0 / 6)"
    )  # the same scores, kept against an epoch 100 days older (the half-lives of HALF_LIVES)
    before = decayed_scores(db, NOW)
    # The baskets' counts over their marks (the pairs' rescoring bound's), which a rebase must keep.
    over_marks = "SELECT item_id, basket_raw / rescored_basket_raw FROM item_baskets"
    marks_before = dict(db.execute(over_marks).fetchall())

    recompute_scores(RecomputeRequest(), now=NOW)

    (epoch,) = db.execute("SELECT epoch FROM score_state").fetchone()
    assert NOW - epoch < timedelta(days=1)
    assert len(before["pairs"]) == 2
    assert_same_scores(before, decayed_scores(db, NOW))
    assert marks_before.keys() == {"milk", "eggs"}
    assert dict(db.execute(over_marks).fetchall()) == pytest.approx(marks_before, rel=1e-9)


def test_events_sent_through_ingestion_are_scored(db: psycopg.Connection) -> None:
    create_catalog(db)
    ingest_batch(EventBatch.model_validate({"events": [purchase("user-9", items=("milk",))]}))
    recompute_scores(RecomputeRequest())
    assert popularity(db, STORE).keys() == {"milk"}


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

    next_month = (datetime.now(UTC).replace(day=1) + timedelta(days=32)).strftime("events_%Y_%m")
    assert db.execute("SELECT to_regclass(%s) IS NOT NULL", (next_month,)).fetchone() == (True,)


def test_trending_favours_a_recent_rise_over_steady_volume_and_ignores_a_handful(db: psycopg.Connection) -> None:
    create_catalog(db)
    steady = [purchase(f"s{day}-{n}", items=("milk",), at=NOW - timedelta(days=day, hours=n))
              for day in range(1, 28) for n in range(3)]  # fmt: skip
    spike = [purchase(f"k{n}", items=("coffee",), at=NOW - timedelta(hours=n)) for n in range(12)]
    record(*steady, *spike, purchase("once", items=("wine",), at=NOW - timedelta(hours=1)))
    recompute_scores(RecomputeRequest(), now=NOW)

    rows = db.execute(
        "SELECT item_id, raw_score, trending_score FROM item_popularity WHERE store_id = %s", (STORE,)
    ).fetchall()
    popular = [item for item, _, _ in sorted(rows, key=lambda r: -r[1])]
    trending = [item for item, _, _ in sorted(rows, key=lambda r: -r[2])]
    assert popular[0] == "milk"
    assert trending[0] == "coffee"
    trending_score = {item: score for item, _, score in rows}
    assert trending_score["coffee"] > 2 * trending_score["wine"]  # one sale is no trend


def test_a_full_rebuild_drops_the_aisle_copy_a_rebuild_of_code_before_0096_left(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    # What older code's failed rebuild leaves: a committed copy of the table it still rebuilt.
    db.execute("CREATE TABLE user_category_affinity_rebuild (LIKE user_category_affinity)")
    db.execute("INSERT INTO user_category_affinity_rebuild VALUES ('user-1', 'aisle', 'Milk', 1.0, now())")

    recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    assert db.execute("SELECT to_regclass('user_category_affinity_rebuild')").fetchone() == (None,)


def test_a_full_rebuild_swaps_in_tables_indexed_exactly_like_the_ones_it_replaces(db: psycopg.Connection) -> None:
    def indexes() -> list[tuple[str, str, str]]:
        return db.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('item_popularity', 'user_item_affinity') ORDER BY 1, 2"
        ).fetchall()

    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    before = indexes()

    recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    assert indexes() == before
    assert len(before) == 2  # two primary keys (the trending index on popularity went with migration 0089)
    assert db.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%%_rebuild'").fetchone() == (0,)


def rebuild_copies(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '%%_rebuild' ORDER BY 1")
    return [row[0] for row in rows]


def test_a_rebuild_that_fails_after_its_parts_committed_changes_nothing_and_the_next_drops_their_copies(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_PAIRS_MIN_SUPPORT", "1")
    settings.scoring_settings.cache_clear()
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")), event("click", "user-2", item_id="milk"))
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-3", items=("coffee", "milk")))
    before = decayed_scores(db, NOW)
    next_key = db.execute("SELECT last_value FROM item_key_seq").fetchone()

    def swap_fails(conn: psycopg.Connection, items_keyed: int) -> None:
        raise RuntimeError("the run's process dies before its swap")

    swap_rebuilt = scores_db.swap_rebuilt
    monkeypatch.setattr(scores_db, "swap_rebuilt", swap_fails)
    with pytest.raises(RuntimeError, match="dies before its swap"):
        recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    assert decayed_scores(db, NOW) == before
    assert db.execute("SELECT last_value FROM item_key_seq").fetchone() == next_key
    # The parts on connections of their own committed their copies; the run's own (item reorders among them, from
    # its user × item copy) were rolled back.
    assert rebuild_copies(db) == [
        "item_baskets_rebuild", "item_pair_counts_rebuild", "item_pairs_rebuild", "item_popularity_rebuild",
    ]  # fmt: skip

    monkeypatch.setattr(scores_db, "swap_rebuilt", swap_rebuilt)
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    rebuilt = decayed_scores(db, NOW)
    record(purchase("user-4", items=("bananas", "milk")))
    recompute_scores(RecomputeRequest(), now=NOW)

    assert rebuild_copies(db) == []
    assert rebuilt["pair_counts"].keys() == {"eggs/milk", "coffee/milk"}
    # Items new after the rebuild are keyed after the ones it numbered.
    keys = [row[0] for row in db.execute("SELECT item_key FROM item_baskets ORDER BY item_key")]
    assert keys == [1, 2, 3, 4]


def test_a_rebuild_part_that_fails_cancels_the_run_which_fails_with_its_error(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest(), now=NOW)
    before = decayed_scores(db, NOW)

    def slow_events(conn: psycopg.Connection, *args: object) -> None:
        conn.execute("SELECT pg_sleep(60)")

    def pairs_fail(conn: psycopg.Connection, *args: object) -> None:
        while not conn.execute(
            "SELECT pg_stat_clear_snapshot(), "
            "EXISTS (SELECT FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(60)')"
        ).fetchone()[1]:
            sleep(0.01)
        raise ValueError("a basket the part cannot count")

    monkeypatch.setattr(scores_db, "rebuild_events", slow_events)
    monkeypatch.setattr(scores_db, "rebuild_pairs", pairs_fail)
    started = monotonic()
    with pytest.raises(ValueError, match="cannot count"):
        recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    assert monotonic() - started < 30  # the run's statement was cancelled, not waited for
    assert decayed_scores(db, NOW) == before


def watermarks(conn: psycopg.Connection) -> tuple:
    """The scored snapshots of the score tables' watermark and of the pair tables' own."""
    return conn.execute(
        "SELECT s.scored_snapshot::text, p.scored_snapshot::text FROM score_state s, pair_score_state p"
    ).fetchone()


def test_a_run_that_fails_after_its_pairs_committed_leaves_them_ahead_and_the_next_counts_no_basket_twice(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_PAIRS_MIN_SUPPORT", "1")
    settings.scoring_settings.cache_clear()
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-2", items=("milk", "eggs", "coffee")))

    def dies(*args: object) -> None:
        raise RuntimeError("the run's process dies before it records the run")

    record_run = scores_db.record_run
    monkeypatch.setattr(scores_db, "record_run", dies)
    with pytest.raises(RuntimeError, match="dies before"):
        recompute_scores(RecomputeRequest(), now=NOW)

    # The pairs' transaction committed beside the run's, which rolled back: the pairs hold user-2's basket.
    scored, pairs_scored = watermarks(db)
    assert scored != pairs_scored
    assert db.execute("SELECT count(*) FROM user_item_affinity WHERE user_id = 'user-2'").fetchone() == (0,)
    assert dict(db.execute("SELECT item_id, basket_count FROM item_baskets")) == {"milk": 2, "eggs": 2, "coffee": 1}

    monkeypatch.setattr(scores_db, "record_run", record_run)
    record(purchase("user-3", items=("coffee", "milk")))
    result = recompute_scores(RecomputeRequest(), now=NOW)
    incremental = decayed_scores(db, NOW)

    assert (result.events_scored, result.pair_updates) == (
        2,
        1,
    )  # user-2's and user-3's events; one pair new to the pairs
    assert len(set(watermarks(db))) == 1  # together again
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert_same_scores(incremental, decayed_scores(db, NOW))
    assert incremental["pair_counts"]["eggs/milk"][1:] == (2,)


def test_pairs_behind_the_run_catch_up_at_the_next(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_PAIRS_MIN_SUPPORT", "1")
    settings.scoring_settings.cache_clear()
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest(), now=NOW)
    pair_tables = ("pair_score_state", "item_baskets", "item_pair_counts", "item_pairs")
    behind = {table: db.execute(f"SELECT * FROM {table}").fetchall() for table in pair_tables}
    record(purchase("user-2", items=("milk", "coffee")))
    recompute_scores(RecomputeRequest(), now=NOW)
    # As if that run's pairs had not committed (the run's transaction fails with them; a fan-out coordinator, or a
    # watermark restored from a backup, could still leave them behind).
    db.execute(f"TRUNCATE {', '.join(pair_tables)}")
    for table, rows in behind.items():
        for row in rows:
            db.execute(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(row))})", row)
    record(purchase("user-3", items=("eggs", "coffee")))

    recompute_scores(RecomputeRequest(), now=NOW)
    incremental = decayed_scores(db, NOW)

    assert len(set(watermarks(db))) == 1
    # user-2's basket counted once, by this run
    assert {item: count for item, (_, count) in incremental["baskets"].items()} == {"milk": 2, "eggs": 2, "coffee": 2}
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert_same_scores(incremental, decayed_scores(db, NOW))


def test_a_run_of_the_code_before_the_pairs_watermark_moves_it_with_the_pair_tables(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While migration 0065 is applied (and after a rollback) the code before it still runs: it scores a chunk's
    events and baskets in one transaction and moves score_state alone. The pairs' watermark must follow, or the
    next run of this code counts those baskets again (found by review)."""
    monkeypatch.setenv("SCORING_PAIRS_MIN_SUPPORT", "1")
    settings.scoring_settings.cache_clear()
    scoring = settings.scoring_settings()
    create_catalog(db)
    record(purchase("user-1", items=("milk", "eggs")))
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-2", items=("milk", "eggs")))

    with db.transaction():  # the code before 0065's run, statement for statement
        state = scores_db.load_state(db)
        target, next_scan_from = scores_db.current_snapshot(db)
        chunk = scores_db.next_chunk(
            db, state.scored_snapshot, target, scores_db.FIRST_XID, state.scan_from, scoring.chunk_events
        )
        scores_db.apply_events(db, scoring, state.epoch, chunk, NOW)
        scores_db.apply_pairs(db, scoring, state.epoch, chunk)
        after = scores_db.state_after(state.epoch, chunk, next_scan_from)
        db.execute(  # its save_state: no word of the pairs' own watermark
            """UPDATE score_state SET scored_snapshot = %s::pg_snapshot, target_snapshot = %s::pg_snapshot,
               done_below_xid = %s::xid8, scan_from = %s, updated_at = statement_timestamp()""",
            (after.scored_snapshot, after.target_snapshot, after.done_below_xid, after.scan_from),
        )
    assert len(set(watermarks(db))) == 1

    record(purchase("user-3", items=("eggs", "coffee")))
    recompute_scores(RecomputeRequest(), now=NOW)  # this code again
    incremental = decayed_scores(db, NOW)

    assert {item: count for item, (_, count) in incremental["baskets"].items()} == {"milk": 2, "eggs": 3, "coffee": 1}
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert_same_scores(incremental, decayed_scores(db, NOW))


def test_dormant_items_do_not_trend_and_tiny_scores_never_break_a_run(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-1", items=("milk",), at=datetime(2022, 1, 1, tzinfo=UTC)), purchase("user-2", items=("eggs",))
    )
    recompute_scores(RecomputeRequest(), now=NOW)
    # The epoch ages towards its rebase while the 2022 purchase's scores sit near the smallest float.
    db.execute("UPDATE score_state SET epoch = epoch - interval '70 days'")
    for days in (0, 25):
        result = recompute_scores(RecomputeRequest(), now=NOW + timedelta(days=days))
        assert result.status == "completed"

    trending = dict(db.execute("SELECT item_id, trending_score FROM item_popularity WHERE store_id = %s", (STORE,)))
    assert trending["milk"] < 1e-300 < trending["eggs"]  # no recent sales: no trend


def test_a_full_rebuild_keeps_the_tables_storage_parameters(db: psycopg.Connection) -> None:
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    options = db.execute(
        "SELECT relname, reloptions FROM pg_class"
        " WHERE relname IN ('item_popularity', 'item_reorders', 'user_item_affinity') ORDER BY 1"
    ).fetchall()
    # The user tables are vacuumed sooner (migration 0041): the feed reads them by index-only scans.
    vacuumed_sooner = ["autovacuum_vacuum_scale_factor=0.02", "autovacuum_vacuum_insert_scale_factor=0.02"]
    assert [row[1] for row in options] == [
        ["fillfactor=70"],
        ["fillfactor=50"],  # migration 0125: room for HOT updates
        ["fillfactor=70", *vacuumed_sooner],
    ]


def test_a_rebuilds_copies_are_not_autovacuumed_and_the_swap_keeps_the_tables_autovacuum_setting(
    db: psycopg.Connection,
) -> None:
    """A copy committed before the swap and vacuumed during it deadlocked the swap (scores_db.start_rebuild)."""
    reloptions = "SELECT reloptions FROM pg_class WHERE relname = %s"
    with db.transaction(force_rollback=True):
        scores_db.start_rebuild(db, scores_db.SCORE_TABLES)
        copies = {
            t: db.execute(reloptions, (t + scores_db.REBUILD_SUFFIX,)).fetchone()[0] for t in scores_db.SCORE_TABLES
        }
    assert all("autovacuum_enabled=false" in options for options in copies.values()), copies
    assert copies["item_popularity"] == ["fillfactor=70", "autovacuum_enabled=false"]  # its own parameters kept

    db.execute("ALTER TABLE item_pairs SET (autovacuum_enabled = false)")  # an operator's own setting
    try:
        recompute_scores(RecomputeRequest(mode="full"), now=NOW)

        assert db.execute(reloptions, ("item_pairs",)).fetchone() == (["autovacuum_enabled=false"],)
        assert db.execute(reloptions, ("item_baskets",)).fetchone() == (["fillfactor=70"],)
    finally:
        db.execute("ALTER TABLE item_pairs RESET (autovacuum_enabled)")


def test_each_stores_top_trending_items_are_refreshed_by_a_later_run_without_their_events(
    db: psycopg.Connection,
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("coffee",), at=NOW - timedelta(hours=1)))
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-2", items=("milk",), at=NOW))
    later = NOW + timedelta(days=1)
    recompute_scores(RecomputeRequest(), now=later)

    def coffee_trending() -> list[float]:
        # The store's and the one over all stores ('*'), which stores the catalog does not know are served.
        query = "SELECT trending_score FROM item_popularity WHERE item_id = 'coffee' AND store_id IN (%s, '*')"
        return [score for (score,) in db.execute(query + " ORDER BY store_id", (STORE,))]

    refreshed = coffee_trending()
    recompute_scores(RecomputeRequest(mode="full"), now=later)
    assert len(refreshed) == 2 and refreshed == pytest.approx(coffee_trending(), rel=1e-9)


@pytest.mark.parametrize("packed", [True, False], ids=["from-the-packs", "from-the-rows"])
def test_the_trending_refresh_rewrites_only_the_scores_it_changes(db: psycopg.Connection, packed: bool) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("coffee", "milk"), at=NOW - timedelta(hours=1)))
    recompute_scores(RecomputeRequest(), now=NOW)
    if not packed:  # packs that are not current: each store's top is found by sorting its rows
        db.execute("UPDATE store_shelves SET stale = true")
    (epoch,) = db.execute("SELECT epoch FROM score_state").fetchone()
    scoring = settings.scoring_settings()
    before = dict(db.execute("SELECT store_id || '/' || item_id, trending_score FROM item_popularity"))

    # As of the run, the run's upsert wrote every score of the top: the refresh has nothing to rewrite.
    assert scores_db.refresh_trending(db, scoring, epoch, NOW) == 0
    # An hour later each of them has aged: coffee and milk, at the store and over all stores.
    assert scores_db.refresh_trending(db, scoring, epoch, NOW + timedelta(hours=1)) == len(before) == 4
    after = dict(db.execute("SELECT store_id || '/' || item_id, trending_score FROM item_popularity"))
    assert all(after[key] < before[key] for key in before)


def test_a_chunks_statements_do_not_read_a_month_whose_events_were_received_before_it(db: psycopg.Connection) -> None:
    """A month stored out of arrival order (a backfill, the bench's history) gave the planner no reason to use its
    received_at BRIN index: each of the chunk's statements read it in full (~150 ms a month in the bench)."""
    scoring = settings.scoring_settings()
    create_catalog(db)
    earlier = (NOW - timedelta(days=40)).replace(day=10)
    record(*(purchase(f"user-{n}", items=("milk", "eggs"), at=earlier + timedelta(hours=n)) for n in range(50)))
    db.execute("UPDATE events SET received_at = occurred_at")  # received when they occurred, as a backfill stores them
    db.execute("ANALYZE events")
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-1", items=("eggs", "coffee")))
    # this session's scans of the month (its counts not yet reported count those of earlier transactions too)
    month_scans = "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = %s"
    month = f"events_{earlier:%Y_%m}"

    with db.transaction(force_rollback=True):
        before = db.execute(month_scans, (month,)).fetchone()
        state = scores_db.load_state(db)
        target, _ = scores_db.current_snapshot(db)
        chunk = scores_db.next_chunk(
            db, state.scored_snapshot, target, scores_db.FIRST_XID, state.scan_from, scoring.chunk_events
        )
        counts = scores_db.apply_events(db, scoring, state.epoch, chunk, NOW)
        scores_db.apply_pairs(db, scoring, state.epoch, chunk)
        after = db.execute(month_scans, (month,)).fetchone()
        seqscan = db.execute("SELECT current_setting('enable_seqscan')").fetchone()

    assert counts.events_scored == 1
    assert (after[0] - before[0], after[1] - before[1]) == (0, 3)  # its BRIN index, once per statement
    assert seqscan == ("on",)  # off for those statements only


def test_a_stores_top_is_refreshed_as_last_packed_even_when_a_scored_item_passes_it(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh takes each store's top from its packed shelf (item_popularity has no index on the trending score,
    migration 0089): an item of the last pack's top is refreshed although an item the run scored now ranks above it."""
    monkeypatch.setattr(scores_db, "TRENDING_KEPT_FRESH", 1)
    create_catalog(db)
    record(purchase("user-1", items=("coffee",), at=NOW - timedelta(hours=1)))
    recompute_scores(RecomputeRequest(), now=NOW)  # coffee tops the packs
    record(*(purchase(f"user-{n}", items=("milk",), at=NOW + timedelta(hours=6)) for n in range(2, 6)))
    later = NOW + timedelta(hours=6)
    recompute_scores(RecomputeRequest(), now=later)  # milk passes coffee; coffee is refreshed all the same

    def trending(item_id: str) -> float:
        query = "SELECT trending_score FROM item_popularity WHERE store_id = %s AND item_id = %s"
        return db.execute(query, (STORE, item_id)).fetchone()[0]

    refreshed = trending("coffee")
    assert trending("milk") > refreshed
    recompute_scores(RecomputeRequest(mode="full"), now=later)
    assert refreshed == pytest.approx(trending("coffee"), rel=1e-9)


def test_an_item_that_joins_the_catalog_has_its_trending_refreshed_by_the_next_run(db: psycopg.Connection) -> None:
    """Events of an item the catalog does not know are scored, but no pack holds the item, so the refresh (from each
    store's pack) leaves its trending score as its last events made it. A catalog write leaves every pack over an
    older catalog: the next run finds each store's top by sorting its rows, and the item's score is as of the run."""
    create_catalog(db)
    record(*(purchase(f"user-{n}", items=("kombucha",), at=NOW - timedelta(hours=1)) for n in range(3)))
    record(purchase("user-9", items=("milk",), at=NOW - timedelta(hours=1)))
    recompute_scores(RecomputeRequest(), now=NOW)
    later = NOW + timedelta(days=2)
    record(purchase("user-9", items=("milk",), at=later))
    recompute_scores(RecomputeRequest(), now=later)  # kombucha, in no pack, keeps its score of NOW
    frozen = db.execute("SELECT trending_score FROM item_popularity WHERE store_id = %s AND item_id = 'kombucha'",
                        (STORE,)).fetchone()[0]  # fmt: skip
    catalog_db.upsert_items(db, [ITEMS[0].model_copy(update={"item_id": "kombucha", "name": "Kombucha"})])
    record(purchase("user-9", items=("milk",), at=later))
    recompute_scores(RecomputeRequest(), now=later)

    def trending() -> dict[str, float]:
        query = "SELECT item_id, trending_score FROM item_popularity WHERE store_id = %s"
        return dict(db.execute(query, (STORE,)).fetchall())

    refreshed = trending()
    recompute_scores(RecomputeRequest(mode="full"), now=later)
    rebuilt = trending()
    assert frozen > refreshed["kombucha"] == pytest.approx(rebuilt["kombucha"], rel=1e-9)
    assert sorted(refreshed, key=refreshed.get) == sorted(rebuilt, key=rebuilt.get)


def test_a_runs_popularity_upserts_are_hot_updates(db: psycopg.Connection) -> None:
    """No index holds a column the upsert changes (migration 0089): an existing row is updated in place."""
    scoring = settings.scoring_settings()
    create_catalog(db)
    record(purchase("user-1", items=("coffee", "milk")))
    recompute_scores(RecomputeRequest(), now=NOW)
    record(purchase("user-2", items=("coffee", "milk")))
    # this session's updates of the table (its counts not yet reported count those of earlier transactions too)
    updates = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'item_popularity'"

    with db.transaction(force_rollback=True):
        before = db.execute(updates).fetchone()
        state = scores_db.load_state(db)
        target, _ = scores_db.current_snapshot(db)
        chunk = scores_db.next_chunk(
            db, state.scored_snapshot, target, scores_db.FIRST_XID, state.scan_from, scoring.chunk_events
        )
        scores_db.apply_events(db, scoring, state.epoch, chunk, NOW)
        after = db.execute(updates).fetchone()

    assert (after[0] - before[0], after[1] - before[1]) == (4, 4)  # coffee and milk, at the store and over all stores


def plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def test_a_run_looks_up_its_own_users_by_key_not_every_user_the_history_knows(db: psycopg.Connection) -> None:
    """The events statement finds which of its users are new by probing the users' key for each of its own: reading
    every known user instead (to hash them) makes a run's cost grow with the history. The planner probes when it
    expects about as many lines as the chunk has (10 an event, unnest's estimate); with generate_series numbering the
    lines it expected 1,000 an event (~300,000 here) and hashed all 200,000 users."""
    scoring = settings.scoring_settings()
    create_catalog(db)
    record(purchase("user-1", items=("coffee", "milk")))
    recompute_scores(RecomputeRequest(), now=NOW)
    db.execute(
        "INSERT INTO users (user_id, home_store_id) SELECT 'known-' || n, %s FROM generate_series(1, 200000) AS n",
        (STORE,),
    )
    db.execute("ANALYZE users")
    record(*(purchase(f"user-{n}", items=("coffee", "milk", "eggs")) for n in range(2, 302)))
    db.execute("ANALYZE events")  # as autovacuum would: the planner then expects ~300 events in the chunk

    class Planned(Exception):
        """The events statement's plan, in place of its run."""

    class Explained:
        """The connection apply_events is given: it plans the events statement instead of running it."""

        def execute(self, query: str, params: object = None) -> psycopg.Cursor:
            if "run_event" not in query:
                return db.execute(query, params)
            (plan,) = db.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()[0]
            raise Planned(plan["Plan"])

    with db.transaction(force_rollback=True):
        state = scores_db.load_state(db)
        target, _ = scores_db.current_snapshot(db)
        chunk = scores_db.next_chunk(
            db, state.scored_snapshot, target, scores_db.FIRST_XID, state.scan_from, scoring.chunk_events
        )
        with pytest.raises(Planned) as planned:
            scores_db.apply_events(Explained(), scoring, state.epoch, chunk, NOW)

    users_read = [
        node
        for node in plan_nodes(planned.value.args[0])
        if node.get("Relation Name") == "users" and node["Node Type"] != "ModifyTable"  # the scans, not the insert
    ]
    assert users_read, planned.value.args[0]
    assert all("Index Cond" in node for node in users_read), users_read


def test_affinity_weighs_a_purchase_over_a_cart_addition_over_a_click_and_a_hide_suppresses(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Weights other than the defaults (5, 2 and 1): a run that weighs with the defaults fails.
    use_scoring_settings(
        monkeypatch,
        {"SCORING_PURCHASE_WEIGHT": "7", "SCORING_ADD_TO_CART_WEIGHT": "3", "SCORING_CLICK_WEIGHT": "0.5"},
    )
    create_catalog(db)
    at = NOW - timedelta(hours=3)  # one instant: only the event types differ
    record(
        purchase("user-1", items=("milk",), at=at),
        event("add_to_cart", "user-1", item_id="eggs", at=at),
        event("click", "user-1", item_id="coffee", at=at),
        event("hide", "user-1", item_id="bananas", at=at),
    )
    recompute.lambda_handler(eventbridge_scheduled_event(), LambdaContext(function_name="recompute_scores"))

    rows = {
        item_id: (affinity, hidden)
        for item_id, affinity, hidden in db.execute(
            "SELECT item_id, affinity_raw, hidden FROM user_item_affinity WHERE user_id = 'user-1'"
        )
    }
    milk, eggs, coffee = (rows[item][0] for item in ("milk", "eggs", "coffee"))
    assert milk / coffee == pytest.approx(7 / 0.5, rel=1e-9)
    assert eggs / coffee == pytest.approx(3 / 0.5, rel=1e-9)
    store_scores = popularity(db, STORE)
    assert store_scores["milk"] / store_scores["coffee"] == pytest.approx(7 / 0.5, rel=1e-9)
    assert {item: hidden for item, (_, hidden) in rows.items()} == {
        "milk": False, "eggs": False, "coffee": False, "bananas": True,
    }  # fmt: skip
    assert rows["bananas"][0] == 0  # a hide adds no affinity


def test_each_score_decays_with_the_half_life_its_setting_gives(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two baskets six days apart, scored with the half-lives of HALF_LIVES, incrementally and by a rebuild: each
    score of the later basket's items is 2^(6 days / its half-life) times the earlier one's."""
    use_scoring_settings(monkeypatch, HALF_LIVES | {"SCORING_PAIRS_MIN_SUPPORT": "1"})
    create_catalog(db)
    later = NOW - timedelta(hours=1)
    record(
        purchase("user-1", items=("milk", "eggs"), at=later),
        purchase("user-1", items=("coffee", "bananas"), at=later - timedelta(days=6)),
    )

    def later_over_earlier(query: str) -> float:
        scores = dict(db.execute(query).fetchall())
        return scores["milk"] / scores["coffee"]

    for mode in ("incremental", "full"):
        recompute_scores(RecomputeRequest(mode=mode), now=NOW)
        store = f"FROM item_popularity WHERE store_id = '{STORE}'"
        assert later_over_earlier(f"SELECT item_id, raw_score {store}") == pytest.approx(2 ** (6 / 3), rel=1e-9)
        assert later_over_earlier(f"SELECT item_id, short_raw {store}") == pytest.approx(2 ** (144 / 36), rel=1e-9)
        affinity = "FROM user_item_affinity WHERE user_id = 'user-1'"
        assert later_over_earlier(f"SELECT item_id, affinity_raw {affinity}") == pytest.approx(2 ** (6 / 12), rel=1e-9)
        assert later_over_earlier(f"SELECT item_id, purchase_raw {affinity}") == pytest.approx(2 ** (6 / 2), rel=1e-9)
        assert later_over_earlier("SELECT item_id, basket_raw FROM item_baskets") == pytest.approx(2, rel=1e-9)
        pairs = "SELECT item_id, pair_raw FROM item_pairs WHERE paired_item_id IN ('eggs', 'bananas')"
        assert later_over_earlier(pairs) == pytest.approx(2, rel=1e-9)  # milk–eggs over coffee–bananas


def test_a_bad_model_score_setting_stops_feedctl_recompute_in_one_line_before_it_scores(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    monkeypatch.setenv("MODEL_SCORES_PREFIX", "model-scores")  # no slash: no key would name a model
    settings.model_score_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            feedctl(["recompute"])
    finally:
        monkeypatch.delenv("MODEL_SCORES_PREFIX")
        settings.model_score_settings.cache_clear()

    assert stopped.value.code == "feedctl recompute: invalid settings: MODEL_SCORES_PREFIX: String should match " \
                                "pattern '^(.*/)?$'"  # fmt: skip
    assert db.execute("SELECT count(*) FROM score_runs").fetchone()[0] == 0


def test_feedctl_recompute_says_the_scores_are_committed_when_only_the_model_import_failed(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("milk",)))
    monkeypatch.setenv("MODEL_SCORES_BUCKET", "no-such-bucket")  # S3 answers NoSuchBucket
    settings.model_score_settings.cache_clear()
    model_files._s3.cache_clear()  # the client is cached per container; make one inside moto
    try:
        with mock_aws(), pytest.raises(SystemExit) as stopped:
            feedctl(["recompute"])
    finally:
        monkeypatch.delenv("MODEL_SCORES_BUCKET")
        settings.model_score_settings.cache_clear()
        model_files._s3.cache_clear()

    assert str(stopped.value.code).startswith("feedctl recompute: AWS: An error occurred (NoSuchBucket)")
    assert str(stopped.value.code).endswith(
        "; the recompute before it ended and is committed (status completed, 1 events scored); only the model score "
        "import failed"
    )
    assert "\n" not in str(stopped.value.code)
    assert db.execute("SELECT count(*) FROM score_runs").fetchone()[0] == 1
