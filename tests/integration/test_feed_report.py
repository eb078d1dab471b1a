"""The feedback loop: events carrying tracking tokens become per-section, per-variant figures."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from feedcore.db.attribution import section_report
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.conftest import feedctl_json
from tests.factories import NOW, STORE, create_catalog, event, purchase, record
from tests.integration.test_assemble_feed import get_feed


def tracked(event_type: str, user_id: str, item: dict, minutes_ago: float) -> dict:
    feed_id, section, position = item["tracking"].split(":")
    return event(
        event_type, user_id, item_id=item["item_id"], feed_id=feed_id, section=section, position=int(position),
        at=NOW - timedelta(minutes=minutes_ago),
    )  # fmt: skip


@pytest.fixture
def served_feeds(db: psycopg.Connection) -> tuple[dict, dict]:
    create_catalog(db)
    record(*[purchase("user-1", items=("milk", "coffee"), at=NOW - timedelta(days=7 * w)) for w in range(1, 4)])
    record(purchase("user-2", items=("eggs", "bananas"), at=NOW - timedelta(days=3)))
    recompute_scores(RecomputeRequest())
    return get_feed("user-1", {"store_id": STORE})[2], get_feed("user-3", {"store_id": STORE})[2]


def test_impressions_clicks_adds_and_attributed_purchases_per_section_and_variant(
    served_feeds: tuple[dict, dict], db: psycopg.Connection, database_url: str
) -> None:
    mine, theirs = served_feeds
    first, second = mine["sections"][0]["items"][:2]  # user-1's buy_again: milk and coffee
    trending = theirs["sections"][0]["items"][0]
    record(
        tracked("impression", "user-1", first, 30),
        tracked("impression", "user-1", second, 30),
        tracked("click", "user-1", first, 29),
        tracked("add_to_cart", "user-1", first, 28),
        # The first item's last touch was in buy_again; eggs were never touched in a feed.
        purchase("user-1", items=(first["item_id"], "eggs"), at=NOW - timedelta(minutes=10)),
        tracked("impression", "user-3", trending, 20),
        tracked("impression", "user-3", trending, 19),
    )

    rows = {(r.variant, r.section): r for r in section_report(db, NOW - timedelta(hours=1), timedelta(hours=24))}

    buy_again = rows[(mine["variant"], "buy_again")]
    assert (buy_again.impressions, buy_again.clicks, buy_again.add_to_carts, buy_again.purchases) == (2, 1, 1, 1)
    assert buy_again.experiment == "home-feed-order"
    other = rows[(theirs["variant"], theirs["sections"][0]["id"])]
    assert (other.impressions, other.clicks, other.purchases) == (2, 0, 0)

    report = feedctl_json(database_url, "report", "--since", (NOW - timedelta(hours=1)).isoformat())
    printed = {(r["variant"], r["section"]): r for r in report["sections"]}
    assert printed[(mine["variant"], "buy_again")]["ctr"] == 0.5
    assert printed[(mine["variant"], "buy_again")]["add_to_cart_rate"] == 0.5


def test_events_before_since_or_purchases_without_a_touch_do_not_count(
    served_feeds: tuple[dict, dict], db: psycopg.Connection
) -> None:
    mine, _ = served_feeds
    first, second = mine["sections"][0]["items"][:2]
    record(
        tracked("impression", "user-1", first, 180),  # before --since
        purchase("user-1", items=(second["item_id"],), at=NOW - timedelta(minutes=5)),  # never clicked
    )

    assert section_report(db, NOW - timedelta(hours=1), timedelta(hours=24)) == []


def test_events_naming_another_users_feed_count_as_unknown(
    served_feeds: tuple[dict, dict], db: psycopg.Connection
) -> None:
    mine, _ = served_feeds
    first = mine["sections"][0]["items"][0]
    record(tracked("impression", "user-3", first, 10))  # user-3 sends user-1's feed_id

    (row,) = section_report(db, NOW - timedelta(hours=1), timedelta(hours=24))
    assert (row.variant, row.experiment, row.impressions) == ("unknown", None, 1)


def test_a_click_with_a_feed_id_but_no_section_is_reported_under_an_unknown_section(
    served_feeds: tuple[dict, dict], db: psycopg.Connection, database_url: str
) -> None:
    # The contract lets a click carry any of feed_id, section and position; one with only the feed_id (a client
    # that split its tracking token badly) must not break the report.
    mine, _ = served_feeds
    first = mine["sections"][0]["items"][0]
    feed_id = first["tracking"].split(":")[0]
    record(
        event("click", "user-1", item_id=first["item_id"], feed_id=feed_id, at=NOW - timedelta(minutes=20)),
        purchase("user-1", items=(first["item_id"],), at=NOW - timedelta(minutes=10)),
    )

    report = feedctl_json(database_url, "report", "--since", (NOW - timedelta(hours=1)).isoformat())

    ((row),) = report["sections"]
    assert (row["variant"], row["section"], row["clicks"], row["purchases"]) == (mine["variant"], "unknown", 1, 1)
