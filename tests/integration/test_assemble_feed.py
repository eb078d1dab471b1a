"""assemble_feed invoked with API Gateway REST events against the real database."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws
from msgspec import structs

from feedcore import settings
from feedcore.api.catalog_models import CatalogItem, StoreAvailability
from feedcore.api.models import Feed, Problem
from feedcore.db import catalog as catalog_db
from feedcore.db import connection as db_connection
from feedcore.db import feed as feed_db
from feedcore.db.connection import confirm_sent, run
from feedcore.errors import DatabaseUnavailable
from feedcore.feed import cursors
from feedcore.feed import service as feed_service
from feedcore.feed.config import default_ranking_config
from feedcore.feed.experiments import Assignment, assign
from feedcore.feed.service import FeedRequest, assemble_feed
from feedcore.ingestion.privacy import delete_user
from feedcore.ingestion.retention import apply_retention
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from feedlocal.embedded import embedded_server, migrate_database
from tests.aws_events import LambdaContext, api_gateway_rest_event, cognito_claims, response_headers
from tests.conftest import (
    SILENCE_AT_MOST_S,
    SlowServer,
    load_function,
    silent_server,
    use_database,
    wait_until_blocked_by,
)
from tests.factories import ITEMS, NOW, STORE, create_catalog, event, purchase, record

assemble = load_function("assemble_feed")


def get_feed(user_id: str, query: dict[str, str] | None) -> tuple[int, dict[str, str], dict]:
    response = assemble.lambda_handler(
        api_gateway_rest_event(
            "GET",
            f"/v1/users/{user_id}/feed",
            resource="/v1/users/{user_id}/feed",
            path_parameters={"user_id": user_id},
            query=query,
            claims=cognito_claims(user_id),
        ),
        LambdaContext(function_name="assemble_feed"),
    )
    return response["statusCode"], response_headers(response), json.loads(response["body"])


def sections(feed: dict) -> dict[str, list[str]]:
    return {section["id"]: [item["item_id"] for item in section["items"]] for section in feed["sections"]}


def shown(feed: dict) -> set[str]:
    return {item for items in sections(feed).values() for item in items}


def removed_by(feed: dict, filter_name: str) -> set[str]:
    return {r["item_id"] for r in feed["removed"] if r["filter"] == filter_name}


@pytest.fixture
def shopping_history(db: psycopg.Connection) -> None:
    """user-1 buys milk weekly and coffee once; others make milk, eggs, bananas, wine popular at store-a."""
    create_catalog(db)
    history = [purchase("user-1", items=("milk",), at=NOW - timedelta(days=7 * week)) for week in range(1, 5)]
    history += [
        purchase("user-1", items=("coffee", "only-b", "discontinued"), at=NOW - timedelta(days=20)),
        purchase("user-2", items=("eggs", "bananas", "wine")),
        purchase("user-3", items=("eggs", "bananas")),
        purchase("user-4", items=("eggs",)),
        purchase("user-5", items=("only-b", "discontinued")),
    ]
    record(*history)
    recompute_scores(RecomputeRequest())


def test_first_page_has_buy_again_then_trending_with_store_prices_reasons_and_tracking(shopping_history: None) -> None:
    status, headers, feed = get_feed("user-1", {"store_id": STORE})

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    got = sections(feed)
    assert list(got)[:2] == ["buy_again", "trending"]
    assert got["buy_again"] == ["milk", "coffee"]  # weekly milk outranks one coffee
    assert got["trending"][:2] == ["eggs", "bananas"]  # popular at store-a lately, without buy_again's items
    assert sum(len(items) for items in got.values()) == len(shown(feed))  # no item twice on the feed
    milk = feed["sections"][0]["items"][0]
    assert milk["price"] == 3.19  # the store's shelf price, not the catalog's 3.49
    assert milk["name"] == "Whole Milk 1 gal"
    assert milk["reason"].startswith("You bought this 4 times")
    assert milk["tracking"] == f"{feed['feed_id']}:buy_again:0"
    assert milk["debug"] is None and feed["removed"] is None
    assert feed["sections"][1]["items"][0]["reason"] == "Trending at your store"
    assert feed["fallback"] is None and feed["degraded"] is False
    assert feed["experiment"] == "home-feed-order" and feed["variant"] in ("control", "trending_first")
    assert len(feed["feed_id"]) == 32


def is_the_contract(feed: dict) -> bool:
    """The served JSON is exactly the documented Feed model: same fields, order, types and formats."""
    return json.dumps(Feed.model_validate(feed).model_dump(mode="json")) == json.dumps(feed)


def test_every_kind_of_page_is_the_documented_feed(shopping_history: None) -> None:
    for debug in ("false", "true"):
        _, _, first = get_feed("user-1", {"store_id": STORE, "limit": "1", "debug": debug})
        _, _, later = get_feed("user-1", {"store_id": STORE, "cursor": first["next_cursor"], "debug": debug})
        _, _, new_user = get_feed("someone-new", {"store_id": STORE, "debug": debug})
        _, _, unknown_store = get_feed("user-1", {"store_id": "store-z", "debug": debug})

        for feed in (first, later, new_user, unknown_store):
            assert feed["sections"] and is_the_contract(feed), feed
        assert first["next_cursor"] and later["feed_id"] == first["feed_id"]


def test_debug_explains_scores_and_removals(shopping_history: None) -> None:
    _, _, feed = get_feed("user-1", {"store_id": STORE, "debug": "true", "limit": "30"})

    for section in feed["sections"]:
        for item in section["items"]:
            debug = item["debug"]
            assert debug["score"] == pytest.approx(sum(debug["contributions"].values()), abs=1e-5)
    milk = feed["sections"][0]["items"][0]["debug"]
    assert milk["source"] == "buy_again" and milk["contributions"] == {"buy_again": 1.0}  # the best of its section
    assert removed_by(feed, "unavailable") >= {"only-b"}  # not sold at store-a
    assert removed_by(feed, "inactive") >= {"discontinued"}
    assert {"only-b", "discontinued"}.isdisjoint(shown(feed))


def test_hidden_items_leave_every_section_as_soon_as_the_hide_arrives(shopping_history: None) -> None:
    record(event("hide", "user-1", item_id="milk"), event("hide", "user-1", item_id="eggs"))  # not recomputed yet

    _, _, feed = get_feed("user-1", {"store_id": STORE, "debug": "true", "limit": "30"})

    assert {"milk", "eggs"}.isdisjoint(shown(feed))
    assert "eggs" in removed_by(feed, "hidden")
    assert "eggs" in sections(get_feed("someone-new", {"store_id": STORE})[2])["trending"]  # hides are per user
    recompute_scores(RecomputeRequest())
    assert {"milk", "eggs"}.isdisjoint(shown(get_feed("user-1", {"store_id": STORE, "limit": "30"})[2]))


def test_a_product_just_purchased_leaves_buy_again_at_once(shopping_history: None) -> None:
    record(purchase("user-1", items=("coffee",), at=NOW - timedelta(minutes=2)))  # not recomputed yet

    _, _, feed = get_feed("user-1", {"store_id": STORE, "debug": "true", "limit": "30"})

    assert sections(feed)["buy_again"] == ["milk"]
    assert "coffee" in removed_by(feed, "just_purchased")


def test_an_item_due_again_stays_even_if_bought_within_days(db: psycopg.Connection) -> None:
    create_catalog(db)
    # Bananas every other day: bought yesterday, they are due again tomorrow, so they stay.
    record(*[purchase("user-1", items=("bananas",), at=NOW - timedelta(days=1 + 2 * n)) for n in range(6)])
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE})

    assert sections(feed)["buy_again"] == ["bananas"]


def test_a_staple_of_the_users_baskets_stays_even_if_bought_within_days(db: psycopg.Connection) -> None:
    create_catalog(db)
    # Weekly orders, the last two days ago: milk in every one (due at the next order, whenever it comes), eggs
    # in the first and the last only (neither a staple nor due yet: hidden).
    orders = [NOW - timedelta(days=2 + 7 * n) for n in range(6)]
    record(
        *[
            purchase("user-1", items=("milk", "eggs") if n in (0, 5) else ("milk",), at=at)
            for n, at in enumerate(orders)
        ]
    )
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE, "debug": "true"})

    assert sections(feed)["buy_again"] == ["milk"]
    assert "eggs" in removed_by(feed, "just_purchased")


def test_a_staple_is_judged_by_every_order_the_recompute_counted(db: psycopg.Connection) -> None:
    create_catalog(db)
    # Ten orders two days apart, the last two days ago: milk in the even ones, coffee in the odd ones, eggs in the
    # first and the last. Their item rows show four order instants; the user placed nine orders after eggs' first,
    # and eggs came back in one of them: no staple at 0.15 (with five orders, as the rows suggest, it would be).
    orders = [NOW - timedelta(days=2 + 2 * n) for n in range(9, -1, -1)]
    record(
        *[
            purchase("user-1", items=(("milk",) if n % 2 == 0 else ("coffee",)) + (("eggs",) if n in (0, 9) else ()),
                     at=at)
            for n, at in enumerate(orders)
        ]
    )  # fmt: skip
    recompute_scores(RecomputeRequest())
    base = default_ranking_config().base

    def removed_at(min_rebuy_rate: float) -> set[str]:
        config = base.model_copy(update={"just_purchased_min_rebuy_rate": min_rebuy_rate})
        page = assemble_feed(FeedRequest("user-1", STORE, debug=True), assignment=Assignment(None, "test", config))
        return removed_by(json.loads(page.body), "just_purchased")

    assert "eggs" in removed_at(0.15)
    assert "eggs" not in removed_at(0.1)  # one in nine


def test_of_two_items_bought_alike_the_one_other_buyers_rebuy_comes_first(db: psycopg.Connection) -> None:
    create_catalog(db)
    # user-1 bought bananas and eggs together twice; user-2 buys eggs every week, three others tried bananas once.
    record(
        *[purchase("user-1", items=("bananas", "eggs"), at=NOW - timedelta(days=days)) for days in (20, 10)],
        *[purchase("user-2", items=("eggs",), at=NOW - timedelta(days=7 * week)) for week in range(1, 5)],
        *[purchase(f"user-{user}", items=("bananas",), at=NOW - timedelta(days=5)) for user in (3, 4, 5)],
    )
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE})

    assert sections(feed)["buy_again"] == ["eggs", "bananas"]


def test_cart_additions_drive_goes_well_with_at_once(shopping_history: None, db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO item_pairs (item_id, paired_item_id, pair_raw, score) VALUES "
        "('coffee', 'milk', 3, 0.9), ('coffee', 'bananas', 2, 0.5), ('coffee', 'only-b', 2, 0.8)"
    )
    record(event("add_to_cart", "user-9", item_id="coffee"))  # a new user, nothing recomputed

    _, _, feed = get_feed("user-9", {"store_id": STORE, "debug": "true", "limit": "30"})

    assert sections(feed)["goes_well_with"] == ["milk", "bananas"]  # only-b is not sold at store-a
    assert feed["sections"][0]["items"][0]["reason"] == "Goes well with Ground Coffee 12 oz"
    assert "coffee" in removed_by(feed, "in_cart")  # what is in the cart is not suggested
    assert feed["fallback"] is None  # a cart is history enough


# Planners that meet the user's events in other orders: by the (user_id, occurred_at DESC) index, by a bitmap scan of
# it (heap order), by a sequential scan, and without incremental sorts or hashed groups.
PLANNERS = (
    "-c enable_indexscan=on",
    "-c enable_indexscan=off",
    "-c enable_indexscan=off -c enable_bitmapscan=off",
    "-c enable_incremental_sort=off -c enable_hashagg=off",
)


def store_events_as_received(db: psycopg.Connection, events: list[tuple]) -> None:
    """Store (event_id, occurred_at, received_at, type, item) rows of user-1's, in this physical order."""
    db.execute("DELETE FROM events")
    db.execute("SELECT create_event_partition(%s)", (NOW.date(),))
    db.cursor().executemany(
        "INSERT INTO events (event_id, occurred_at, received_at, event_type, user_id, store_id, item_id)"
        " VALUES (%s, %s, %s, %s, 'user-1', 'store-a', %s)",
        events,
    )


def recent_events(database_url: str, planner: str, recent_limit: int, reorders: bool) -> dict[str, tuple]:
    """user-1's recent events per item as the feed reads them, in a session with the given planner settings."""
    with psycopg.connect(database_url, autocommit=True, options=planner) as conn:
        query = feed_db.UserRowsQuery(
            user_id="user-1", models=(), pairs=False, pool=10, buy_again_pool=200,
            recent_since=NOW - timedelta(hours=6), recent_limit=recent_limit, reorders=reorders,
        )  # fmt: skip
        return feed_db.user_rows(conn, query).recent


def test_the_latest_events_are_cut_in_a_total_order_whatever_their_physical_order_and_the_plan(
    db: psycopg.Connection, database_url: str
) -> None:
    """Four cart additions share one instant at the cut of the latest three events (the recent limit): the ones
    received later are the later ones, of two received at once the one with the larger event id."""
    latest, tied, received = NOW - timedelta(minutes=10), NOW - timedelta(minutes=20), NOW - timedelta(minutes=5)
    events = [
        (uuid.UUID(int=1), latest, received, "add_to_cart", "milk"),
        (uuid.UUID(int=2), tied, received + timedelta(seconds=3), "add_to_cart", "eggs"),
        (uuid.UUID(int=3), tied, received + timedelta(seconds=1), "add_to_cart", "coffee"),
        (uuid.UUID(int=2**128 - 1), tied, received + timedelta(seconds=2), "add_to_cart", "bananas"),
        (uuid.UUID(int=4), tied, received + timedelta(seconds=2), "add_to_cart", "wine"),
    ]
    expected = {"milk": (None, None, latest, True), "eggs": (None, None, tied, True),
                "bananas": (None, None, tied, True)}  # fmt: skip

    # Without statistics first, for every physical order: a DELETE keeps the statistics an ANALYZE gathered.
    for analyzed in (False, True):
        for physical_order in (events, events[::-1], events[2:] + events[:2]):
            store_events_as_received(db, physical_order)
            if analyzed:
                db.execute("ANALYZE events")
            for planner in PLANNERS:
                for reorders in (True, False):
                    found = recent_events(database_url, planner, 3, reorders)
                    assert found == expected, (physical_order, analyzed, planner, reorders)


def test_of_a_cart_addition_and_removal_at_one_instant_the_one_received_later_counts(
    db: psycopg.Connection, database_url: str
) -> None:
    """Milk added then removed, eggs removed then added, each sent in two requests with one occurred_at (a clock
    that counts seconds): the later request wins. Sent in one batch (received at once), coffee's addition and
    bananas' removal have the larger event id and win: a fixed rule, where the batch's own order is not kept."""
    at, received, later = NOW - timedelta(minutes=15), NOW - timedelta(minutes=14), NOW - timedelta(minutes=13)
    small, large = (uuid.UUID(int=n) for n in (1, 2)), (uuid.UUID(int=2**128 - n) for n in (1, 2))
    events = [
        (uuid.uuid4(), at, received, "add_to_cart", "milk"),
        (uuid.uuid4(), at, later, "remove_from_cart", "milk"),
        (uuid.uuid4(), at, received, "remove_from_cart", "eggs"),
        (uuid.uuid4(), at, later, "add_to_cart", "eggs"),
        (next(large), at, received, "add_to_cart", "coffee"),
        (next(small), at, received, "remove_from_cart", "coffee"),
        (next(small), at, received, "add_to_cart", "bananas"),
        (next(large), at, received, "remove_from_cart", "bananas"),
    ]
    in_cart = {"milk": False, "eggs": True, "coffee": True, "bananas": False}

    for physical_order in (events, events[::-1]):
        store_events_as_received(db, physical_order)
        for planner in PLANNERS:
            for reorders in (True, False):
                found = recent_events(database_url, planner, 100, reorders)
                assert {item: facts[3] for item, facts in found.items()} == in_cart, (physical_order, planner)

    db.execute("DELETE FROM events")
    record(event("add_to_cart", item_id="tea", at=at))
    record(event("remove_from_cart", item_id="tea", at=at))  # through ingestion: received later
    assert recent_events(database_url, PLANNERS[0], 100, False)["tea"][3] is False


def test_excluded_tags_are_left_out(shopping_history: None) -> None:
    _, _, everything = get_feed("someone-new", {"store_id": STORE, "limit": "30"})
    query = {"store_id": STORE, "limit": "30", "exclude_tags": "alcohol", "debug": "true"}
    _, _, feed = get_feed("someone-new", query)

    assert "wine" in shown(everything)
    assert "wine" not in shown(feed)
    assert "wine" in removed_by(feed, "excluded_tags")


@pytest.mark.parametrize(
    ("catalog_tag", "excluded"), [("Alcohol", "alcohol"), ("alcohol", "ALCOHOL"), ("ALCOHOL", "Alcohol")]
)
def test_tags_are_case_insensitive_from_the_catalog_to_exclude_tags(
    shopping_history: None, catalog_tag: str, excluded: str
) -> None:
    (wine,) = (item for item in ITEMS if item.item_id == "wine")
    retagged = CatalogItem.model_validate(wine.model_dump() | {"tags": [catalog_tag]})
    run(lambda conn: catalog_db.upsert_items(conn, [retagged]))

    query = {"store_id": STORE, "limit": "30", "exclude_tags": excluded, "debug": "true"}
    _, _, feed = get_feed("someone-new", query)

    assert "wine" not in shown(feed)
    assert "wine" in removed_by(feed, "excluded_tags")


def test_a_new_user_gets_trending_and_popular_items(shopping_history: None) -> None:
    status, _, feed = get_feed("someone-new", {"store_id": STORE, "limit": "30"})

    assert status == 200
    assert feed["fallback"] == "new_user"
    assert "buy_again" not in sections(feed)
    assert sections(feed)["trending"][:2] == ["eggs", "bananas"]


def test_an_unknown_store_falls_back_to_lists_over_all_stores(shopping_history: None) -> None:
    status, _, feed = get_feed("someone-new", {"store_id": "store-unknown", "limit": "30"})

    assert status == 200
    assert feed["fallback"] == "global"
    assert sections(feed)["trending"][:2] == ["eggs", "bananas"]
    assert feed["sections"][0]["items"][0]["reason"] == "Trending right now"
    assert "discontinued" not in shown(feed)


def stock_shelves(conn: psycopg.Connection, count: int) -> list[str]:
    """`count` more items in three aisles, all sold at store-a and each bought by a few other shoppers."""
    items = [
        CatalogItem(item_id=f"item-{n}", name=f"Item {n}", department="Pantry", aisle=f"Aisle {n % 3}",
                    brand=f"Brand {n % 5}", price=1.99)
        for n in range(count)
    ]  # fmt: skip
    catalog_db.upsert_items(conn, items)
    catalog_db.upsert_availability(conn, [StoreAvailability(store_id=STORE, item_id=i.item_id) for i in items])
    record(*[purchase(f"shopper-{n}", items=(f"item-{n}", f"item-{(n * 7 + 1) % count}")) for n in range(count)])
    return [item.item_id for item in items]


def test_pages_never_repeat_or_skip_while_scores_change(shopping_history: None, db: psycopg.Connection) -> None:
    stock_shelves(db, 40)
    recompute_scores(RecomputeRequest())
    _, _, whole = get_feed("user-1", {"store_id": STORE, "limit": "30"})
    expected = [(s["id"], i["item_id"]) for s in whole["sections"] for i in s["items"]]
    assert len(whole["sections"]) >= 3

    paged, query, feed_ids = [], {"store_id": STORE, "limit": "1"}, set()
    while True:
        status, _, page = get_feed("user-1", query)
        assert status == 200
        assert len(page["sections"]) == 1
        paged += [(s["id"], i["item_id"]) for s in page["sections"] for i in s["items"]]
        feed_ids.add(page["feed_id"])
        # Between pages, the scores change a lot: bananas become user-1's top item and the store's trend.
        record(*[purchase(f"user-{n}", items=("bananas", "coffee")) for n in range(1, 30)])
        recompute_scores(RecomputeRequest())
        if page["next_cursor"] is None:
            break
        query = {"store_id": STORE, "limit": "1", "cursor": page["next_cursor"]}

    assert paged == expected
    assert len(feed_ids) == 1
    _, _, fresh = get_feed("user-1", {"store_id": STORE, "limit": "30"})
    assert [(s["id"], i["item_id"]) for s in fresh["sections"] for i in s["items"]] != expected  # scores did change


def test_a_snapshot_keeps_only_the_sections_after_the_first_page(
    shopping_history: None, db: psycopg.Connection
) -> None:
    stock_shelves(db, 40)
    recompute_scores(RecomputeRequest())
    _, _, whole = get_feed("user-1", {"store_id": STORE, "limit": "30"})
    _, _, first = get_feed("user-1", {"store_id": STORE, "limit": "2"})
    _, _, explained = get_feed("user-1", {"store_id": STORE, "limit": "2", "debug": "true"})
    confirm_sent()
    snapshots = dict(db.execute("SELECT feed_id, sections FROM feed_snapshots").fetchall())
    later = json.loads(json.dumps(whole["sections"][2:]).replace(whole["feed_id"], first["feed_id"]))  # tracking

    assert len(whole["sections"]) >= 4 and len(first["sections"]) == 2
    # The served sections are not kept (null in their places: cursors start after them), nor the removals.
    assert snapshots[first["feed_id"]]["sections"] == [None, None, *later]
    assert explained["removed"] and snapshots[explained["feed_id"]]["removed"] is None

    # Later pages (whatever their limit) are the rest of the feed, in order, as a snapshot of every section (what
    # earlier versions recorded) serves them too.
    _, _, second = get_feed("user-1", {"store_id": STORE, "limit": "1", "cursor": first["next_cursor"]})
    _, _, rest = get_feed("user-1", {"store_id": STORE, "limit": "30", "cursor": second["next_cursor"]})
    assert second["sections"] + rest["sections"] == later and rest["next_cursor"] is None
    every_section = {**snapshots[first["feed_id"]], "sections": [*first["sections"], *later]}
    db.execute(
        "UPDATE feed_snapshots SET sections = %s WHERE feed_id = %s", (json.dumps(every_section), first["feed_id"])
    )
    assert get_feed("user-1", {"store_id": STORE, "limit": "1", "cursor": first["next_cursor"]})[2] == second


def test_a_tampered_cursor_gets_400_naming_the_cursor(shopping_history: None) -> None:
    _, _, page = get_feed("user-1", {"store_id": STORE, "limit": "1"})
    cursor = page["next_cursor"]
    payload, mac = cursor.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BA") + "." + mac

    for bad in (forged, "not-a-cursor", cursor + "x"):
        status, headers, body = get_feed("user-1", {"store_id": STORE, "cursor": bad})
        assert status == 400, bad
        assert headers["Content-Type"] == "application/problem+json"
        assert body["errors"][0]["field"] == "cursor"
    status, _, body = get_feed("user-2", {"store_id": STORE, "cursor": cursor})  # someone else's cursor
    assert status == 400
    assert "another user" in body["detail"]


def test_a_cursor_signed_with_the_development_key_around_no_position_gets_400_naming_the_cursor(
    shopping_history: None,
) -> None:
    payload = b'{"f":"x"}'  # anyone can sign this with the public local development key
    cursor = f"{cursors._b64(payload)}.{cursors._b64(cursors._mac(cursors._LOCAL_DEVELOPMENT_KEYS.signing, payload))}"
    status, headers, body = get_feed("user-1", {"store_id": STORE, "cursor": cursor})
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert body["errors"][0]["field"] == "cursor"


def test_an_expired_snapshot_gets_410(shopping_history: None, db: psycopg.Connection) -> None:
    _, _, page = get_feed("user-1", {"store_id": STORE, "limit": "1"})
    confirm_sent()  # the recording has committed (it was sent without waiting)
    db.execute("UPDATE feed_snapshots SET expires_at = now() - interval '1 second'")

    status, headers, body = get_feed("user-1", {"store_id": STORE, "cursor": page["next_cursor"]})

    assert status == 410
    assert headers["Content-Type"] == "application/problem+json"
    assert Problem.model_validate(body).feed_id == page["feed_id"]
    assert "request the feed again" in body["detail"]


def test_each_feed_is_recorded_for_attribution(shopping_history: None, db: psycopg.Connection) -> None:
    _, _, feed = get_feed("user-1", {"store_id": STORE})
    confirm_sent()

    row = db.execute("SELECT user_id, store_id, experiment, variant FROM feeds WHERE feed_id = %s", (feed["feed_id"],))
    assert row.fetchone() == ("user-1", STORE, "home-feed-order", feed["variant"])


def test_a_feed_is_recorded_by_a_function_planned_once_a_session_without_waiting_for_the_wal(
    db: psycopg.Connection,
) -> None:
    # record_feed (migration 0105): both rows, and synchronous_commit off for the caller's transaction only
    expires_at = NOW + timedelta(minutes=30)
    with db.transaction():
        db.execute(
            "SELECT record_feed(%s, 'user-1', %s, NULL, 'control', 'new_user', %s, %s, %s::json)",
            ("feed-1", STORE, NOW, expires_at, '{"sections": [null]}'),
        )
        assert db.execute("SHOW synchronous_commit").fetchone() == ("off",)
    assert db.execute("SHOW synchronous_commit").fetchone() == ("on",)
    assert db.execute("SELECT user_id, store_id, experiment, variant, fallback, created_at FROM feeds").fetchall() == [
        ("user-1", STORE, None, "control", "new_user", NOW)
    ]
    assert db.execute("SELECT feed_id, user_id, expires_at, sections FROM feed_snapshots").fetchall() == [
        ("feed-1", "user-1", expires_at, {"sections": [None]})
    ]
    assert "record_feed(" in feed_db._SAVE_FEED  # what the service sends


def test_a_first_page_is_logged_and_counted_once_its_recording_is_on_its_way(
    shopping_history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server stores the feed while the page writes its log line and metrics, rather than after.
    sent_when_logged = []
    info = feed_service.logger.info

    def logged(message: str, *args, **kwargs) -> None:
        if message == "feed assembled":
            sent_when_logged.append(getattr(db_connection._cache, "unconfirmed", None) is not None)
        info(message, *args, **kwargs)

    monkeypatch.setattr(feed_service.logger, "info", logged)
    assert get_feed("user-1", {"store_id": STORE})[0] == 200
    assert sent_when_logged == [True]


def test_a_first_page_whose_recording_cannot_be_sent_is_still_logged_and_counted(
    shopping_history: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def unsendable(*_: object) -> None:
        raise psycopg.OperationalError("the server closed the connection")

    monkeypatch.setattr(feed_db, "record_feed", unsendable)
    caplog.clear()
    capsys.readouterr()
    status, _, feed = get_feed("user-1", {"store_id": STORE})
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]

    assert status == 200 and feed["degraded"] is True
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("feed ")] == [
        "feed assembled", "feed degraded: a dependency is unavailable",
    ]  # fmt: skip
    assert any("FeedRankLatency" in blob and "FeedCandidates.buy_again" in blob for blob in metrics)


def test_the_same_user_always_gets_the_same_variant(shopping_history: None) -> None:
    variants = {get_feed("user-1", {"store_id": STORE})[2]["variant"] for _ in range(5)}
    others = {get_feed(f"user-{n}", {"store_id": STORE})[2]["variant"] for n in range(40)}

    assert len(variants) == 1
    assert others == {"control", "trending_first"}  # 40 users: both variants are served


def test_the_degraded_modes_popular_lists_stay_as_many_as_the_shelves_held(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEED_STORE_SHELF_CACHE_SIZE", "3")
    use_database(database_url)
    for n in range(12):  # store ids the catalog does not know, as any client may send
        assert get_feed("user-1", {"store_id": f"nowhere-{n}"})[0] == 200

    assert len(feed_service._cached_popular) <= 4  # the shelves held, and the list just made


def test_a_slow_database_gives_a_degraded_feed_within_the_timeout(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, healthy = get_feed("someone-new", {"store_id": STORE, "limit": "30"})  # the container caches popular items
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")
    use_database(database_url)
    feed_backend = run(lambda conn: conn.info.backend_pid, in_transaction=False)  # the container's connection
    with psycopg.connect(database_url) as blocker:
        # Held until the block ends: what every first page reads (the shelf may be cached).
        blocker.execute("LOCK TABLE user_item_affinity IN ACCESS EXCLUSIVE MODE")
        caplog.clear()
        status, _, feed = get_feed("user-1", {"store_id": STORE})
        # How long the server ran the statement that waited for the lock, on its own clock (a loaded client does
        # not count); from its Execute message, after the timeout started at its Parse: a little under 200 ms.
        blocker.execute("SELECT pg_stat_clear_snapshot()")
        waited, state = blocker.execute(
            "SELECT extract(epoch FROM state_change - query_start)::float8, state FROM pg_stat_activity WHERE pid = %s",
            (feed_backend,),
        ).fetchone()
        _, _, sober = get_feed("user-1", {"store_id": STORE, "exclude_tags": "alcohol"})

    assert status == 200
    assert feed["degraded"] is True and feed["fallback"] == "cached_popular" and is_the_contract(feed)
    degraded = [r for r in caplog.records if r.getMessage() == "feed degraded: a dependency is unavailable"]
    assert "canceling statement due to statement timeout" in degraded[0].error  # the lock was waited for
    assert state == "idle" and waited < 1  # its 200 ms, far from the default statement timeout (2 s)
    cached = sections(feed)["popular"]
    assert len(cached) >= 3 and set(cached) <= shown(healthy)  # the store's popular items, as cached
    assert "wine" in cached
    assert sober["degraded"] is True and sections(sober)["popular"] == [item for item in cached if item != "wine"]
    assert get_feed("user-1", {"store_id": STORE})[2]["degraded"] is False  # and it recovers


def test_a_database_that_stops_answering_gives_a_degraded_feed_within_its_bound(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    get_feed("someone-new", {"store_id": STORE, "limit": "30"})  # the container caches popular items
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")  # the client waits for an answer up to 0.2 + 1 s
    use_database(database_url)
    with silent_server():  # its statement timeout never fires: the server does not run
        started = time.perf_counter()
        status, _, feed = get_feed("user-1", {"store_id": STORE})
        elapsed = time.perf_counter() - started

    assert status == 200 and feed["degraded"] is True and feed["fallback"] == "cached_popular"
    # The client gave up at its bound (1.2 s, not the default statement timeout's 3 s), before the server answered.
    [degraded] = [r for r in caplog.records if r.getMessage() == "feed degraded: a dependency is unavailable"]
    assert "no answer from the database within 1.2 s" in degraded.error
    assert 1.2 <= elapsed < SILENCE_AT_MOST_S
    assert get_feed("user-1", {"store_id": STORE})[2]["degraded"] is False  # on a new connection


def test_a_database_slow_at_every_answer_gives_a_degraded_feed_within_the_bound_of_one_answer(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every answer comes within the client's bound of an answer (0.5 + 1 s), but a page waits for several: the
    # previous page's recording, the store's shelf (checked on every request here) and the user's rows.
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "500")
    monkeypatch.setenv("FEED_STORE_SHELF_TTL_S", "0")
    slow = SlowServer(database_url)
    try:
        use_database(slow.url)
        get_feed("someone-new", {"store_id": STORE, "limit": "30"})  # the container caches popular items
        slow.delay_s = 0.9
        caplog.clear()
        started = time.perf_counter()
        status, _, feed = get_feed("user-1", {"store_id": STORE})
        elapsed = time.perf_counter() - started
        slow.delay_s = 0
        recovered = get_feed("user-1", {"store_id": STORE})[2]
    finally:
        slow.close()
        use_database(database_url)

    assert elapsed < 1.5 + 0.9, elapsed  # the bound, and the one answer it may still wait for in closing
    assert status == 200 and feed["degraded"] is True and feed["fallback"] == "cached_popular"
    [degraded] = [r for r in caplog.records if r.getMessage() == "feed degraded: a dependency is unavailable"]
    assert "no answer from the database within" in degraded.error
    assert recovered["degraded"] is False and sections(recovered)["buy_again"] == ["milk", "coffee"]


def test_a_first_page_does_not_wait_for_its_recording_and_the_next_page_on_the_container_finds_it(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "30000")  # the recording waits for the lock longer than the test
    use_database(database_url)
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE feeds IN ACCESS EXCLUSIVE MODE")  # the recording waits for this lock
        status, _, first = get_feed("user-1", {"store_id": STORE, "limit": "1"})
        # The page came while its recording waits (a page that waited for it would wait out the statement timeout
        # and find the recording failed: nothing would wait any more).
        wait_until_blocked_by(blocker)
    # The lock is gone: the recording commits; the next request on this connection reads its outcome first.
    status_next, _, second = get_feed("user-1", {"store_id": STORE, "limit": "1", "cursor": first["next_cursor"]})

    assert status == 200 and first["degraded"] is False and first["next_cursor"]
    assert status_next == 200 and second["feed_id"] == first["feed_id"]
    assert second["sections"][0]["id"] != first["sections"][0]["id"]


def test_a_next_page_served_elsewhere_before_the_recording_commits_waits_for_it(
    shopping_history: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = []
    looked_up, not_found_yet = [], threading.Event()
    feed_snapshot = feed_db.feed_snapshot

    def looked_up_snapshot(*args: object) -> feed_db.FeedSnapshot | None:
        found = feed_snapshot(*args)
        looked_up.append(found is not None)
        if found is None:
            not_found_yet.set()
        return found

    monkeypatch.setattr(feed_db, "feed_snapshot", looked_up_snapshot)
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE feeds IN ACCESS EXCLUSIVE MODE")
        _, _, first = get_feed("user-1", {"store_id": STORE, "limit": "1"})
        # Another container (a thread has a connection of its own) asks for page 2 while the snapshot is not
        # committed; the lock goes once it has looked for the snapshot and not found it.
        query = {"store_id": STORE, "limit": "1", "cursor": first["next_cursor"]}
        elsewhere = threading.Thread(target=lambda: answers.append(get_feed("user-1", query)))
        elsewhere.start()
        assert not_found_yet.wait(30)
    elsewhere.join()

    ((status, _, second),) = answers
    assert status == 200 and second["feed_id"] == first["feed_id"]
    assert looked_up[0] is False and looked_up[-1] is True  # not found, then found by looking again


def wait_until_recording_ended(conn: psycopg.Connection, feed_backend: int) -> None:
    """Return once the server has ended the feed recording that `feed_backend` ran last (whatever its outcome)."""
    deadline = time.monotonic() + 30
    while True:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        state, query = conn.execute(
            "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (feed_backend,)
        ).fetchone()
        if state == "idle" and "record_feed(" in query:
            return
        assert time.monotonic() < deadline, (state, query)
        time.sleep(0.01)


def test_a_recording_that_fails_is_logged_and_counted_at_the_next_request_which_is_served(
    shopping_history: None,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "200")
    use_database(database_url)
    feed_backend = run(lambda conn: conn.info.backend_pid, in_transaction=False)  # the container's connection
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE feeds IN ACCESS EXCLUSIVE MODE")  # held past the recording's timeout
        caplog.clear()
        status, _, first = get_feed("user-1", {"store_id": STORE, "limit": "1"})
        logged_before_the_next_use = "recording the feed failed" in caplog.text
        wait_until_recording_ended(blocker, feed_backend)

    capsys.readouterr()
    status_next, _, recovered = get_feed("user-1", {"store_id": STORE})
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]

    # The page was served before its recording failed (the failure is unknown until the next use).
    assert status == 200 and first["degraded"] is False and first["next_cursor"]
    assert not logged_before_the_next_use
    failures = [r for r in caplog.records if r.getMessage() == "recording the feed failed"]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
    assert failures[0].feed_id == first["feed_id"] and "statement timeout" in failures[0].error
    assert [blob["FeedRecordingFailed"] for blob in metrics if "FeedRecordingFailed" in blob] == [[1.0]]
    assert status_next == 200 and recovered["degraded"] is False
    assert sections(recovered)["buy_again"] == ["milk", "coffee"]
    # Its cursor leads nowhere: once the recording has surely ended, its next page is gone.
    assert get_feed("user-1", {"store_id": STORE, "cursor": first["next_cursor"]})[0] == 410


def test_a_connection_lost_before_its_recordings_outcome_is_logged_and_replaced(
    shopping_history: None, database_url: str, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE feeds IN ACCESS EXCLUSIVE MODE")
        _, _, first = get_feed("user-1", {"store_id": STORE})
        # The server ends the container's connection while its recording waits (a failover, say).
        terminated = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'feed-assembly'"
        ).fetchall()
    assert terminated == [(True,)]

    status, _, feed = get_feed("user-1", {"store_id": STORE})

    assert status == 200 and feed["degraded"] is False and sections(feed)["buy_again"] == ["milk", "coffee"]
    logged = [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage().startswith("recording")]
    assert [r.feed_id for r in logged] == [first["feed_id"]]


def test_the_database_stopped_mid_test_gives_a_degraded_200(database_url: str) -> None:
    # Not under pytest's tmp_path: a concurrent pytest session resets that tree to mode 0700, which the
    # server's own system user then cannot enter.
    scratch = Path(tempfile.mkdtemp(prefix="feed-degraded-"))
    server = embedded_server(scratch / "pgdata", on_exit="delete")
    try:
        url = server.get_uri()
        migrate_database(url)
        use_database(url)
        with psycopg.connect(url, autocommit=True) as conn:
            create_catalog(conn)
        record(purchase("user-2", items=("eggs", "bananas")), purchase("user-3", items=("eggs",)))
        recompute_scores(RecomputeRequest())
        _, _, before = get_feed("user-1", {"store_id": STORE})
        assert before["degraded"] is False and shown(before)

        server.cleanup()  # stops the server (and deletes its data)
        status, _, feed = get_feed("user-1", {"store_id": STORE})
    finally:
        server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)
        use_database(database_url)

    assert status == 200
    assert feed["degraded"] is True
    assert sections(feed)["popular"][:2] == ["eggs", "bananas"]
    assert feed["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (None, "store_id"),
        ({"store_id": "bad store!"}, "store_id"),
        ({"store_id": STORE, "limit": "0"}, "limit"),
        ({"store_id": STORE, "limit": "many"}, "limit"),
        ({"store_id": STORE, "exclude_tags": "alcohol,,x"}, "exclude_tags"),
        ({"store_id": STORE, "debug": "perhaps"}, "debug"),
    ],
    ids=["missing-store", "invalid-store", "limit-zero", "limit-not-a-number", "empty-tag", "debug-not-bool"],
)
def test_bad_query_gets_problem_json_naming_the_parameter(db: psycopg.Connection, query, field) -> None:
    status, headers, body = get_feed("user-1", query)

    assert status == 422
    assert headers["Content-Type"] == "application/problem+json"
    assert field in {error["field"] for error in body["errors"]}


def test_sections_fill_from_items_the_store_sells_even_when_top_scores_are_elsewhere(db: psycopg.Connection) -> None:
    create_catalog(db)
    # user-1's recent purchases are only sold at store-b or inactive; their milk is older but sold at store-a.
    record(
        purchase("user-1", items=("milk",), at=NOW - timedelta(days=30)),
        *[purchase("user-1", items=("only-b", "discontinued"), at=NOW - timedelta(days=5)) for _ in range(5)],
    )
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE})

    assert sections(feed)["buy_again"] == ["milk"]


def test_a_connection_dropped_between_calls_is_replaced_without_failing_the_call(
    shopping_history: None, db: psycopg.Connection
) -> None:
    assert get_feed("user-1", {"store_id": STORE})[0] == 200
    # The server ends the container's cached connection, as after a failover or a proxy idle timeout.
    terminated = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'feed-assembly'"
    ).fetchall()
    assert terminated == [(True,)]

    status, _, feed = get_feed("user-1", {"store_id": STORE})

    assert status == 200
    assert sections(feed)["buy_again"] == ["milk", "coffee"]


def test_the_scheduled_run_removes_expired_snapshots(shopping_history: None, db: psycopg.Connection) -> None:
    recompute = load_function("recompute_scores")
    _, _, old = get_feed("user-1", {"store_id": STORE})
    _, _, current = get_feed("user-2", {"store_id": STORE})
    confirm_sent()
    db.execute(
        "UPDATE feed_snapshots SET expires_at = now() - interval '1 second' WHERE feed_id = %s", (old["feed_id"],)
    )

    result = recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert result["feed_snapshots_expired"] == 1
    assert [row[0] for row in db.execute("SELECT feed_id FROM feed_snapshots")] == [current["feed_id"]]


def test_a_run_that_fails_still_removes_expired_snapshots(
    shopping_history: None, database_url: str, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    recompute = load_function("recompute_scores")
    _, _, old = get_feed("user-1", {"store_id": STORE})
    confirm_sent()
    db.execute("UPDATE feed_snapshots SET expires_at = now() - interval '1 second'")
    monkeypatch.setenv("SCORING_RECOMPUTE_STATEMENT_TIMEOUT_MS", "1000")
    use_database(database_url)

    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE store_shelves IN ACCESS EXCLUSIVE MODE")  # packing the shelves times out
        with pytest.raises(DatabaseUnavailable):
            recompute.lambda_handler({"mode": "incremental"}, LambdaContext(function_name="recompute_scores"))

    assert db.execute("SELECT count(*) FROM feed_snapshots WHERE feed_id = %s", (old["feed_id"],)).fetchone() == (0,)


def test_each_request_reports_stage_latencies_candidates_removals_and_variant(
    shopping_history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    _, _, feed = get_feed("user-1", {"store_id": STORE})

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {metric["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for metric in d["Metrics"]}
    assert {"FeedQueryLatency", "FeedRankLatency", "FeedSaveLatency", "FeedLatency"} <= names
    assert {"FeedCandidates.buy_again", "FeedCandidates.trending", "FeedRemoved.unavailable"} <= names
    served = next(blob for blob in blobs if "FeedServed" in blob)
    assert (served["variant"], served["fallback"]) == (feed["variant"], "none")


def test_a_cursor_is_bound_to_the_first_pages_store_and_excluded_tags(shopping_history: None) -> None:
    _, _, page = get_feed("user-1", {"store_id": STORE, "limit": "1", "exclude_tags": "alcohol"})
    cursor = page["next_cursor"]

    for changed in ({"store_id": "store-b", "exclude_tags": "alcohol"}, {"store_id": STORE}):
        status, _, body = get_feed("user-1", {**changed, "cursor": cursor})
        assert status == 400
        assert "store_id or exclude_tags" in body["detail"]
    assert get_feed("user-1", {"store_id": STORE, "exclude_tags": "alcohol", "cursor": cursor})[0] == 200


def test_the_cursor_of_a_feed_excluding_the_longest_list_of_tags_leads_to_its_next_page(
    shopping_history: None,
) -> None:
    tags = ",".join(f"tag-{n:035d}" for n in range(10))  # 399 characters: within the 400 the route takes
    query = {"store_id": STORE, "limit": "1", "exclude_tags": tags}
    _, _, first = get_feed("user-1", query)

    status, _, second = get_feed("user-1", {**query, "cursor": first["next_cursor"]})

    assert status == 200, second
    assert second["feed_id"] == first["feed_id"] and second["sections"]


def test_later_pages_carry_score_breakdowns_only_when_asked(shopping_history: None) -> None:
    _, _, page = get_feed("user-1", {"store_id": STORE, "limit": "1", "debug": "true"})

    _, _, plain = get_feed("user-1", {"store_id": STORE, "cursor": page["next_cursor"]})
    _, _, detailed = get_feed("user-1", {"store_id": STORE, "cursor": page["next_cursor"], "debug": "true"})

    assert all(item["debug"] is None for section in plain["sections"] for item in section["items"])
    assert all(item["debug"] for section in detailed["sections"] for item in section["items"])
    assert plain["removed"] is None and detailed["removed"] is None  # removals belong to the first page


def test_a_page_in_flight_survives_a_rotation_of_the_cursor_key_and_a_foreign_key_gets_400(
    shopping_history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEED_CURSOR_SECRET", raising=False)  # a key set here would sign instead of the secret's
    monkeypatch.setattr(cursors, "_keys_read", {})
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secret_arn = secrets.create_secret(Name="cursor-key", SecretString="the key before")["ARN"]
        monkeypatch.setenv("FEED_CURSOR_SECRET_ARN", secret_arn)
        settings.feed_settings.cache_clear()
        try:
            _, _, first = get_feed("user-1", {"store_id": STORE, "limit": "1"})
            secrets.put_secret_value(SecretId=secret_arn, SecretString="the key after")  # the README's rotation
            monkeypatch.setattr(cursors, "_keys_read", {})  # the next page lands on a container started since
            status, _, second = get_feed("user-1", {"store_id": STORE, "cursor": first["next_cursor"]})
            # and on one started once the new key signs, where the old key only verifies
            monkeypatch.setattr(cursors, "_keys_read", {})
            monkeypatch.setattr(cursors, "_NEW_KEY_SIGNS_AFTER", timedelta(0))
            status_later, _, later = get_feed("user-1", {"store_id": STORE, "cursor": first["next_cursor"]})
            keys_read_later = cursors._keys_read[secret_arn].keys
            payload, mac = first["next_cursor"].split(".")
            foreign = f"{payload}.{cursors._b64(cursors._mac(b'a key the secret never held', cursors._unb64(payload)))}"
            refused, headers, problem = get_feed("user-1", {"store_id": STORE, "cursor": foreign})
        finally:
            monkeypatch.delenv("FEED_CURSOR_SECRET_ARN")
            settings.feed_settings.cache_clear()

    # the keys came from the secret
    assert mac == cursors._b64(cursors._mac(b"the key before", cursors._unb64(payload)))
    assert keys_read_later == cursors.CursorKeys(b"the key after", (b"the key before",))
    assert status == 200 and second["feed_id"] == first["feed_id"] and second["sections"]
    assert status_later == 200 and later == second
    assert refused == 400 and headers["Content-Type"] == "application/problem+json"
    assert problem["errors"][0]["field"] == "cursor"


def test_an_unreadable_cursor_secret_gives_a_degraded_200_and_writes_nothing(
    shopping_history: None, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_feed("someone-new", {"store_id": STORE})  # the container caches the store's popular items
    monkeypatch.delenv("FEED_CURSOR_SECRET", raising=False)
    monkeypatch.setattr(cursors, "_keys_read", {})
    monkeypatch.setenv("FEED_CURSOR_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing")
    settings.feed_settings.cache_clear()
    try:
        with mock_aws():  # Secrets Manager without that secret
            status, _, feed = get_feed("user-1", {"store_id": STORE})
    finally:
        monkeypatch.delenv("FEED_CURSOR_SECRET_ARN")
        settings.feed_settings.cache_clear()

    assert status == 200
    assert feed["degraded"] is True and feed["sections"]
    assert db.execute("SELECT count(*) FROM feeds WHERE user_id = 'user-1'").fetchone() == (0,)


def test_erasing_a_user_removes_their_feeds_and_retention_the_old_ones(
    shopping_history: None, db: psycopg.Connection
) -> None:
    get_feed("user-1", {"store_id": STORE})
    get_feed("user-2", {"store_id": STORE})

    delete_user("user-1")

    assert db.execute("SELECT user_id FROM feeds").fetchall() == [("user-2",)]
    assert db.execute("SELECT user_id FROM feed_snapshots").fetchall() == [("user-2",)]
    apply_retention(keep_days=60, now=NOW + timedelta(days=61))
    assert db.execute("SELECT count(*) FROM feeds").fetchone() == (0,)


def test_the_users_item_rows_carry_the_reorder_counts_of_bought_items_only(db: psycopg.Connection) -> None:
    # user-1 bought milk twice and clicked eggs long ago (both scored); user-2 bought eggs in three orders and milk
    # once. Eggs has reorder counts of its own, but user-1 never bought it: its row carries none.
    create_catalog(db)
    record(
        *[purchase("user-1", items=("milk",), at=NOW - timedelta(days=days)) for days in (14, 7)],
        event("click", "user-1", item_id="eggs", at=NOW - timedelta(days=10)),
        *[purchase("user-2", items=("eggs",), at=NOW - timedelta(days=days)) for days in (21, 14, 7)],
        purchase("user-2", items=("milk",), at=NOW - timedelta(days=3)),
    )
    recompute_scores(RecomputeRequest())
    query = feed_db.UserRowsQuery("user-1", (), False, 20, 200, NOW - timedelta(hours=6))

    rows = feed_db.user_rows(db, query)
    own = feed_db.user_rows(db, structs.replace(query, reorders=False))  # the shelf has the counts

    assert (rows.items["milk"].purchase_count, rows.items["eggs"].purchase_count) == (2, 0)
    assert rows.reorders == {"milk": (3, 2)}
    assert own.reorders == {} and structs.replace(own, reorders=rows.reorders) == rows  # the same rows otherwise


def test_the_users_rows_are_read_on_the_connection_given_whichever_was_used_before(
    db: psycopg.Connection, database_url: str
) -> None:
    """user_rows keeps a cursor between calls (feedcore.db.feed): a call on another connection, or after the one it
    kept a cursor of was closed, reads on the connection it is given."""
    create_catalog(db)
    record(purchase("user-1", items=("milk",), at=NOW - timedelta(days=7)))
    recompute_scores(RecomputeRequest())
    query = feed_db.UserRowsQuery("user-1", (), False, 20, 200, NOW - timedelta(hours=6))
    expected = feed_db.user_rows(db, query)
    assert set(expected.items) == {"milk"}

    with psycopg.connect(database_url, autocommit=True) as other:
        assert feed_db.user_rows(other, query) == expected
        # the rows another transaction of `db` cannot see yet: read on `other` if the cursor were `db`'s
        db.execute("BEGIN")
        db.execute("DELETE FROM user_item_affinity WHERE user_id = 'user-1'")
        assert feed_db.user_rows(other, query) == expected
        assert feed_db.user_rows(db, query).items == {}
        db.execute("ROLLBACK")
        assert feed_db.user_rows(other, query) == expected  # the kept cursor is `other`'s now
    with psycopg.connect(database_url, autocommit=True) as reopened:  # the kept cursor's connection is closed
        assert feed_db.user_rows(reopened, query) == expected


def test_replenishment_timing_puts_the_item_due_first_and_without_it_frequency_decides(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_catalog(db)
    # Milk weekly, last bought a week ago: due now. Coffee every 20 days, last bought 4 days ago: not due, but its
    # eight purchases weigh more in the decayed frequency (~1.92 against ~1.81, times each item's repeat rate).
    # Neither was bought within just_purchased_days (3), so both stay candidates whatever their timing.
    record(
        *[purchase("user-1", items=("milk",), at=NOW - timedelta(days=7 + 7 * n)) for n in range(4)],
        *[purchase("user-1", items=("coffee",), at=NOW - timedelta(days=4 + 20 * n)) for n in range(8)],
    )
    recompute_scores(RecomputeRequest())

    _, _, timed = get_feed("user-1", {"store_id": STORE, "debug": "true"})
    monkeypatch.setenv("FEED_BUY_AGAIN_DUE_WEIGHT", "0")
    use_database(database_url)
    _, _, untimed = get_feed("user-1", {"store_id": STORE, "debug": "true"})

    assert sections(timed)["buy_again"] == ["milk", "coffee"]
    assert sections(untimed)["buy_again"] == ["coffee", "milk"]
    assert removed_by(timed, "just_purchased") == removed_by(untimed, "just_purchased") == set()


@pytest.fixture
def pasta_aisle(db: psycopg.Connection) -> list[str]:
    """Six items of one aisle, sold at store-a, each bought by another shopper ten days ago."""
    create_catalog(db)
    items = [
        CatalogItem(item_id=f"pasta-{n}", name=f"Pasta {n}", department="Pantry", aisle="Dry Pasta", brand=f"Mill {n}",
                    price=1.99)
        for n in range(1, 7)
    ]  # fmt: skip
    catalog_db.upsert_items(db, items)
    catalog_db.upsert_availability(db, [StoreAvailability(store_id=STORE, item_id=i.item_id) for i in items])
    record(*[purchase(f"shopper-{n}", items=(item.item_id,), at=NOW - timedelta(days=10)) for n, item in
             enumerate(items)])  # fmt: skip
    return [item.item_id for item in items]


def test_favourite_aisles_shows_the_other_items_of_the_users_top_aisles(
    pasta_aisle: list[str], db: psycopg.Connection
) -> None:
    # user-1's aisles: Dry Pasta (three orders of two of its items), Eggs (a cart addition), Coffee (a click).
    record(
        *[purchase("user-1", items=("pasta-1", "pasta-2"), at=NOW - timedelta(days=days)) for days in (10, 20, 30)],
        event("add_to_cart", "user-1", item_id="eggs", at=NOW - timedelta(days=5)),
        event("click", "user-1", item_id="coffee", at=NOW - timedelta(days=5)),
    )
    recompute_scores(RecomputeRequest())

    _, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "30"})

    got = sections(feed)
    order = list(got)
    earlier = {item for section in order[: order.index("favourite_aisles")] for item in got[section]}
    assert set(got["buy_again"]) == {"pasta-1", "pasta-2"}
    # The top two aisles' other items, each shown once: here unless an earlier section (trending) showed it.
    assert set(got["favourite_aisles"]) == {"pasta-3", "pasta-4", "pasta-5", "pasta-6", "eggs"} - earlier
    assert {"pasta-3", "pasta-4", "pasta-5", "pasta-6"} <= shown(feed)
    assert got["favourite_aisles"]  # trending shows at most three items of an aisle (max_per_aisle)
    assert "coffee" not in got["favourite_aisles"]  # the user's third aisle


def test_the_feeds_aisle_affinities_are_the_users_positive_events_summed_per_aisle_of_the_catalog(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # user-1's events in two runs: orders of several aisles, a cart addition, clicks, a hide of a bought item (its
    # purchases still count), an impression (no weight), a line of an item the catalog lacks; another user's order.
    create_catalog(db)
    first = [
        purchase("user-1", items=("milk", "eggs"), at=NOW - timedelta(days=40)),
        purchase("user-1", items=("milk", "coffee", "mystery"), at=NOW - timedelta(days=12)),
        event("add_to_cart", "user-1", item_id="bananas", at=NOW - timedelta(days=3)),
    ]
    later = [
        event("click", "user-1", item_id="wine", at=NOW - timedelta(days=2)),
        event("click", "user-1", item_id="bananas", at=NOW - timedelta(hours=30)),
        event("hide", "user-1", item_id="eggs", at=NOW - timedelta(days=1)),
        event("impression", "user-1", item_id="discontinued", feed_id="f1", section="trending", position=0),
        purchase("user-2", items=("only-b", "milk")),
    ]
    record(*first)
    recompute_scores(RecomputeRequest(), now=NOW)
    record(*later)
    recompute_scores(RecomputeRequest(), now=NOW)
    # The catalog moves coffee to another aisle after its events were scored: it counts where it is now.
    db.execute("UPDATE items SET aisle = 'Tea' WHERE item_id = 'coffee'")
    aisle_of = dict(db.execute("SELECT item_id, aisle FROM items").fetchall())
    scoring = settings.scoring_settings()
    weights = {"purchase": scoring.purchase_weight, "add_to_cart": scoring.add_to_cart_weight,
               "click": scoring.click_weight}  # fmt: skip
    half_life_s = scoring.affinity_half_life_days * 86_400
    expected: dict[str, float] = {}  # Σ weight · 2^(−age / half-life) per aisle, from the events themselves
    for sent in first + later:
        age_s = (NOW - datetime.fromisoformat(sent["occurred_at"])).total_seconds()
        items = [line["item_id"] for line in sent["items"]] if sent["type"] == "purchase" else [sent["item_id"]]
        for item_id in items:
            if sent["user_id"] == "user-1" and weights.get(sent["type"], 0) > 0 and item_id in aisle_of:
                aisle = aisle_of[item_id]
                expected[aisle] = expected.get(aisle, 0.0) + weights[sent["type"]] * 2 ** (-age_s / half_life_s)
    (epoch,) = db.execute("SELECT epoch FROM score_state").fetchone()
    as_of_now = 2 ** (-(NOW - epoch).total_seconds() / half_life_s)  # raw scores are kept against the epoch
    seen = {}  # the aisles the feed's sources and its ranking were given
    gather, select = feed_service.gather_candidates, feed_service.select_sections

    def gather_seen(shelf, user, aisles, limits):
        seen["sources"] = aisles
        return gather(shelf, user, aisles, limits)

    def select_seen(candidates, specs, context):
        seen["ranking"] = context.aisle_affinities
        return select(candidates, specs, context)

    monkeypatch.setattr(feed_service, "gather_candidates", gather_seen)
    monkeypatch.setattr(feed_service, "select_sections", select_seen)

    assemble_feed(FeedRequest("user-1", STORE), now=NOW)

    assert seen["sources"] is seen["ranking"]
    aisles = seen["ranking"]
    assert sorted(aisles) == ["Eggs", "Fresh Fruit", "Milk", "Red Wine", "Tea"] == sorted(expected)
    for aisle, affinity in expected.items():
        assert aisles[aisle] * as_of_now == pytest.approx(affinity, rel=1e-9), aisle


def test_new_arrivals_shows_the_items_added_to_the_catalog_lately(db: psycopg.Connection) -> None:
    create_catalog(db)
    db.execute("UPDATE items SET created_at = now() - interval '90 days'")
    db.execute("UPDATE items SET created_at = now() - interval '10 days' WHERE item_id = 'bananas'")
    record(purchase("user-2", items=("eggs", "milk")))
    recompute_scores(RecomputeRequest())
    granola = {"item_id": "granola", "name": "Granola 16 oz", "department": "Breakfast", "aisle": "Cereal",
               "brand": "Oats & Co", "price": 4.99}  # fmt: skip
    admin = load_function("ingest_events")
    for method, path, resource, body, parameters in (
        ("PUT", "/v1/items", "/v1/items", {"items": [granola]}, None),
        ("PUT", f"/v1/stores/{STORE}/availability", "/v1/stores/{store_id}/availability",
         {"items": [{"item_id": "granola"}]}, {"store_id": STORE}),
    ):  # fmt: skip
        operator = cognito_claims("ops", "admin")
        request = api_gateway_rest_event(
            method, path, resource=resource, body=body, path_parameters=parameters, claims=operator
        )
        assert admin.lambda_handler(request, LambdaContext(function_name="ingest_events"))["statusCode"] == 200

    _, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "30"})

    # The newest first; the rest of the catalog is older than new_arrival_days (30).
    assert sections(feed)["new_arrivals"] == ["granola", "bananas"]


def test_goes_well_with_is_seeded_by_a_purchase_just_made_without_a_cart(db: psycopg.Connection) -> None:
    create_catalog(db)
    # Other shoppers' baskets: coffee with milk four times, with bananas three, with eggs twice (below the minimum
    # support of 3 baskets).
    baskets = [("coffee", "milk")] * 4 + [("coffee", "bananas")] * 3 + [("coffee", "eggs")] * 2
    record(*[purchase(f"shopper-{n}", items=basket, at=NOW - timedelta(days=10)) for n, basket in enumerate(baskets)])
    recompute_scores(RecomputeRequest())
    record(purchase("user-9", items=("coffee",), at=NOW - timedelta(minutes=2)))  # not scored yet; no cart

    _, _, feed = get_feed("user-9", {"store_id": STORE, "limit": "30"})

    goes_well_with = next(section for section in feed["sections"] if section["id"] == "goes_well_with")
    assert [item["item_id"] for item in goes_well_with["items"]] == ["milk", "bananas"]  # by cosine: 4/√36 > 3/√27
    assert {item["reason"] for item in goes_well_with["items"]} == {"Goes well with Ground Coffee 12 oz"}
    assert feed["fallback"] is None


@pytest.mark.parametrize(
    "content", ['{"base": {"sections": []}}', "not json", None], ids=["invalid", "not-json", "missing"]
)
def test_an_unusable_ranking_config_file_is_logged_and_counted_and_the_packaged_config_serves(
    shopping_history: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
) -> None:
    # As with AppConfig: a bad config document must not take the feed down (before: every page degraded, empty on
    # a container that had not served the store yet, and logged as "a dependency is unavailable").
    path = tmp_path / "ranking.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("FEED_RANKING_CONFIG_FILE", str(path))
    settings.feed_settings.cache_clear()
    try:
        caplog.clear()
        capsys.readouterr()
        status, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "30"})
        emitted = capsys.readouterr().out
    finally:
        monkeypatch.delenv("FEED_RANKING_CONFIG_FILE")
        settings.feed_settings.cache_clear()

    assert status == 200 and feed["degraded"] is False
    packaged = assign(default_ranking_config(), "user-1")
    assert (feed["experiment"], feed["variant"]) == (packaged.experiment, packaged.variant)
    assert sections(feed)["buy_again"] == ["milk", "coffee"]
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("ranking config")]
    assert logged.levelno == logging.ERROR and str(path) in logged.error
    assert logged.getMessage().endswith("unusable; serving the packaged default")  # not "the last good one": none kept
    metrics = [json.loads(line) for line in emitted.splitlines() if line.startswith('{"_aws"')]
    assert [blob["RankingConfigErrors"] for blob in metrics if "RankingConfigErrors" in blob] == [[1.0]]


def test_a_ranking_config_file_declares_sections_their_caps_and_order(
    shopping_history: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A section the packaged config does not have (buy-again items under another id and title, one item), and a
    # variant that shows trending (two items) before it and leaves popular out.
    config = {
        "base": {"sections": [
            {"id": "staples", "title": "Your staples", "source": "buy_again", "weights": {"buy_again": 1.0}, "size": 1},
            {"id": "trending", "title": "Trending at your store", "source": "trending", "weights": {"trending": 1.0},
             "size": 2},
            {"id": "popular", "title": "Popular", "source": "popular", "weights": {"popularity": 1.0}},
        ]},
        "experiment": {"name": "staples-test", "variants": {
            "staples_second": {"traffic": 100, "overrides": {"section_order": ["trending", "staples"]}},
        }},
    }  # fmt: skip
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("FEED_RANKING_CONFIG_FILE", str(path))
    settings.feed_settings.cache_clear()
    try:
        caplog.clear()
        _, _, feed = get_feed("user-1", {"store_id": STORE, "limit": "30"})
    finally:
        monkeypatch.delenv("FEED_RANKING_CONFIG_FILE")
        settings.feed_settings.cache_clear()

    assert (feed["experiment"], feed["variant"]) == ("staples-test", "staples_second")
    assert [(section["id"], section["title"]) for section in feed["sections"]] == [
        ("trending", "Trending at your store"), ("staples", "Your staples"),
    ]  # fmt: skip
    assert sections(feed) == {"trending": ["eggs", "bananas"], "staples": ["milk"]}  # buy-again was milk, coffee
    (logged,) = [record for record in caplog.records if record.getMessage() == "feed assembled"]
    assert (logged.feed_id, logged.variant) == (feed["feed_id"], "staples_second")
    assert logged.sections == {"trending": 2, "staples": 1}
