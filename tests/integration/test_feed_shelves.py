"""The container's cached store shelves: packed in the database as the store's rows rank them, store-level
changes reach the feed within FEED_STORE_SHELF_TTL_S, the user's own events at once, and model sections read
both the user's and the item-level scores."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg
import pytest

from feedcore.api.catalog_models import AvailabilityUpdate, CatalogItem, CatalogUpdate, StoreAvailability
from feedcore.db import catalog as catalog_db
from feedcore.db import feed as feed_db
from feedcore.feed import shelves
from feedcore.feed.service import forget_store_shelves
from feedcore.feed.shelves import Catalog, StoreShelf, stock_catalog, stock_shelf, unpack_shelf
from feedcore.ingestion.catalog import update_availability, upsert_catalog
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.factories import ITEMS, NOW, OTHER_STORE, STORE, create_catalog, event, purchase, record
from tests.integration.test_assemble_feed import get_feed, sections, shown


class Clock:
    """Stands in for the shelf cache's monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(shelves, "monotonic", clock)
    return clock


@pytest.fixture
def popular_store(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        purchase("user-2", items=("eggs", "bananas", "coffee")),
        purchase("user-3", items=("eggs", "bananas")),
        purchase("user-4", items=("eggs",)),
    )
    recompute_scores(RecomputeRequest())


def test_availability_and_price_changes_reach_the_feed_once_the_shelf_is_older_than_its_ttl(
    popular_store: None, db: psycopg.Connection, clock: Clock
) -> None:
    query = {"store_id": STORE, "limit": "30"}
    assert "eggs" in shown(get_feed("someone-new", query)[2])  # the container now holds store-a's shelf

    catalog_db.upsert_availability(
        db,
        [
            StoreAvailability(store_id=STORE, item_id="eggs", available=False),
            StoreAvailability(store_id=STORE, item_id="bananas", available=True, price=0.49),
        ],
    )
    clock.now += 29  # FEED_STORE_SHELF_TTL_S is 30 by default
    cached = get_feed("someone-new", query)[2]
    clock.now += 1
    fresh = get_feed("someone-new", query)[2]

    assert "eggs" in shown(cached)  # the shelf read before the change, still within its time
    assert "eggs" not in shown(fresh)
    bananas = next(item for section in fresh["sections"] for item in section["items"] if item["item_id"] == "bananas")
    assert bananas["price"] == 0.49


def test_a_zero_ttl_reads_the_shelf_for_every_request(
    popular_store: None, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("FEED_STORE_SHELF_TTL_S", "0")
    from feedcore import settings

    settings.feed_settings.cache_clear()
    try:
        assert "eggs" in shown(get_feed("someone-new", {"store_id": STORE})[2])
        catalog_db.upsert_availability(db, [StoreAvailability(store_id=STORE, item_id="eggs", available=False)])
        assert "eggs" not in shown(get_feed("someone-new", {"store_id": STORE})[2])  # the clock did not move
    finally:
        monkeypatch.delenv("FEED_STORE_SHELF_TTL_S")
        settings.feed_settings.cache_clear()


def test_the_users_own_events_change_the_next_feed_while_the_shelf_is_cached(popular_store: None, clock: Clock) -> None:
    query = {"store_id": STORE, "limit": "30", "debug": "true"}
    assert "eggs" in shown(get_feed("user-1", query)[2])

    record(event("hide", "user-1", item_id="eggs"), event("add_to_cart", "user-1", item_id="coffee"))
    feed = get_feed("user-1", query)[2]  # same shelf, no recompute

    assert "eggs" not in shown(feed)
    assert {r["item_id"] for r in feed["removed"] if r["filter"] == "hidden"} >= {"eggs"}
    assert feed["fallback"] is None  # a cart is history enough


def test_a_model_section_ranks_the_users_scores_and_the_item_level_ones(db: psycopg.Connection, clock: Clock) -> None:
    create_catalog(db)
    db.execute(
        "INSERT INTO model_scores (model, user_id, item_id, score) VALUES "
        "('picked_for_you', 'user-1', 'coffee', 0.9), ('picked_for_you', 'user-1', 'only-b', 0.95), "
        "('picked_for_you', 'user-2', 'wine', 0.99), ('picked_for_you', '', 'bananas', 0.4)"
    )

    feed = get_feed("user-1", {"store_id": STORE, "limit": "30", "debug": "true"})[2]

    assert sections(feed)["picked_for_you"] == ["coffee", "bananas"]  # only-b is not sold here; wine is user-2's
    picked = next(section for section in feed["sections"] if section["id"] == "picked_for_you")
    coffee = picked["items"][0]["debug"]
    assert coffee["source"] == "model:picked_for_you" and coffee["contributions"]["model"] == pytest.approx(1.0)


def _comparable(shelf: shelves.StoreShelf) -> dict:
    return {
        "store_known": shelf.store_known,
        "available": None if shelf.available is None else bytes(shelf.available),
        "prices": [None if math.isnan(price) else price for price in shelf.prices],
        **{name: list(getattr(shelf, name)) for name in ("popularity", "trending", "trending_items", "popular_items")},
        "aisles": {aisle: list(items) for aisle, items in shelf.aisles.items()},
    }


def test_the_recompute_packs_every_stores_shelf_as_its_rows_rank_it(
    popular_store: None, db: psycopg.Connection
) -> None:
    catalog = stock_catalog(*feed_db.catalog(db))

    for store_id in (STORE, OTHER_STORE, "a-store-the-catalog-lacks"):
        pack = feed_db.store_shelf_pack(db, store_id, None)
        assert (pack.packed_version, pack.stale, pack.changed) == (catalog.version, False, True)
        unpacked = unpack_shelf(catalog, pack)
        assert _comparable(unpacked) == _comparable(stock_shelf(catalog, feed_db.store_rows(db, store_id)))
    assert unpacked.available is None and not unpacked.store_known  # the shelf over all stores
    pack = feed_db.store_shelf_pack(db, STORE, None)
    shelf = unpack_shelf(catalog, pack)
    assert shelf.prices[catalog.positions["milk"]] == 3.19 and shelf.popular_items[0] == catalog.positions["eggs"]
    assert feed_db.store_shelf_pack(db, STORE, pack.packed_at).popularity is None  # the held pack: values left out


def test_writes_of_availability_or_catalog_outside_the_routes_leave_no_pack_in_use(
    popular_store: None, db: psycopg.Connection
) -> None:
    version = feed_db.store_shelf_pack(db, STORE, None).catalog_version
    catalog_db.upsert_availability(db, [StoreAvailability(store_id=STORE, item_id="eggs", available=False)])
    assert feed_db.store_shelf_pack(db, STORE, None).stale
    assert not feed_db.store_shelf_pack(db, OTHER_STORE, None).stale

    catalog_db.upsert_items(db, [CatalogItem(item_id="oats", name="Oats", department="Pantry", aisle="Cereal",
                                              price=2.50)])  # fmt: skip
    catalog_db.upsert_items(db, [CatalogItem(item_id="rye", name="Rye", department="Pantry", aisle="Bread",
                                              price=2.50)])  # fmt: skip
    pack = feed_db.store_shelf_pack(db, OTHER_STORE, None)
    assert pack.catalog_version == version + 2 and pack.packed_version == version  # over the older catalog


def test_the_availability_route_packs_its_stores_shelf(popular_store: None, db: psycopg.Connection) -> None:
    untouched = feed_db.store_shelf_pack(db, OTHER_STORE, None).packed_at

    update_availability(STORE, AvailabilityUpdate(items=[{"item_id": "eggs", "available": False}]))

    catalog = stock_catalog(*feed_db.catalog(db))
    pack = feed_db.store_shelf_pack(db, STORE, None)
    assert not pack.stale and unpack_shelf(catalog, pack).available[catalog.positions["eggs"]] == 0
    assert feed_db.store_shelf_pack(db, OTHER_STORE, None).packed_at == untouched


def test_after_the_catalog_route_the_feed_ranks_from_rows_until_the_recompute_packs_every_shelf(
    popular_store: None, db: psycopg.Connection, clock: Clock
) -> None:
    query = {"store_id": STORE, "limit": "30"}
    packed_at = {store_id: feed_db.store_shelf_pack(db, store_id, None).packed_at for store_id in (STORE, OTHER_STORE)}
    assert "eggs" in shown(get_feed("someone-new", query)[2])

    eggs = next(item for item in ITEMS if item.item_id == "eggs")
    upsert_catalog(CatalogUpdate(items=[eggs.model_copy(update={"active": False})]))
    catalog = stock_catalog(*feed_db.catalog(db))
    for store_id, packed in packed_at.items():  # left as they were, over the older catalog
        pack = feed_db.store_shelf_pack(db, store_id, None)
        assert pack.packed_at == packed and pack.packed_version < catalog.version
    clock.now += 30  # the container checks the pack, finds it over an older catalog, reads the store's rows
    assert "eggs" not in shown(get_feed("someone-new", query)[2])

    recompute_scores(RecomputeRequest())
    for store_id in (STORE, OTHER_STORE, "*"):
        pack = feed_db.store_shelf_pack(db, store_id, None)
        assert pack.packed_version == catalog.version and not pack.stale
        assert _comparable(unpack_shelf(catalog, pack)) == _comparable(
            stock_shelf(catalog, feed_db.store_rows(db, store_id))
        )


def _reorders_of(catalog: Catalog, shelf: StoreShelf) -> dict[str, tuple[int, int]]:
    """The shelf's reorder counts of the items with any, by item."""
    return {
        row[0]: (shelf.item_orders[position], shelf.item_buyers[position])
        for position, row in enumerate(catalog.rows)
        if shelf.item_orders[position]
    }


def test_the_recompute_packs_the_items_reorder_counts_read_with_every_shelf_over_their_catalog(
    popular_store: None, db: psycopg.Connection
) -> None:
    catalog = stock_catalog(*feed_db.catalog(db))
    reorders = {row[0]: row[1:] for row in db.execute("SELECT item_id, order_count, buyer_count FROM item_reorders")}
    assert reorders == {"eggs": (3, 3), "bananas": (2, 2), "coffee": (1, 1)}

    for store_id in (STORE, OTHER_STORE, "*"):
        assert _reorders_of(catalog, unpack_shelf(catalog, feed_db.store_shelf_pack(db, store_id, None))) == reorders
    # the counts held (when they were packed): left out, with the shelf's own values
    counted_at = feed_db.store_shelf_pack(db, STORE, None).reorders_packed_at
    held = feed_db.store_shelf_pack(db, OTHER_STORE, None, counted_at)
    assert counted_at is not None and (held.item_orders, held.item_buyers, held.reorders_packed_at) == (
        None, None, counted_at,
    )  # fmt: skip
    full = feed_db.store_shelf_pack(db, OTHER_STORE, None)
    assert len(held.popularity) == 8 * len(catalog.rows) and held.popularity == full.popularity  # float8 each
    # the availability route packs its store's shelf, read with the counts of the last repack
    update_availability(STORE, AvailabilityUpdate(items=[{"item_id": "eggs", "available": False}]))
    assert _reorders_of(catalog, unpack_shelf(catalog, feed_db.store_shelf_pack(db, STORE, None))) == reorders

    # a new catalog item moves the positions: a shelf packed over the new catalog has no counts until a repack
    upsert_catalog(CatalogUpdate(items=[CatalogItem(item_id="apples", name="Apples", department="Produce",
                                                    aisle="Fruit", price=1.99)]))  # fmt: skip
    update_availability(STORE, AvailabilityUpdate(items=[{"item_id": "apples", "available": True}]))
    assert feed_db.store_shelf_pack(db, STORE, None).item_orders is None
    recompute_scores(RecomputeRequest())
    catalog = stock_catalog(*feed_db.catalog(db))
    assert _reorders_of(catalog, unpack_shelf(catalog, feed_db.store_shelf_pack(db, STORE, None))) == reorders


def test_a_shelf_without_reorder_counts_has_the_feed_read_them_with_the_users_rows(
    db: psycopg.Connection, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # user-1 rebuys milk weekly and bought coffee once; others bought coffee once each and eggs again and again
    create_catalog(db)
    record(
        *[purchase("user-1", items=("milk",), at=NOW - timedelta(days=7 * week)) for week in (1, 2, 3)],
        purchase("user-1", items=("coffee", "eggs"), at=NOW - timedelta(days=10)),
        *[purchase(f"user-{n}", items=("coffee",)) for n in (2, 3, 4)],
        *[purchase("user-5", items=("eggs",), at=NOW - timedelta(days=days)) for days in (2, 9, 16, 23)],
    )
    recompute_scores(RecomputeRequest())
    query = {"store_id": STORE, "debug": "true"}

    def buy_again() -> list[tuple[str, dict]]:
        section = get_feed("user-1", query)[2]["sections"][0]
        assert section["id"] == "buy_again"
        return [(item["item_id"], item["debug"]) for item in section["items"]]

    # which of the user's rows functions each feed asks for: with the counts (feed_user_rows) or without
    read_reorders, user_rows = [], feed_db.user_rows
    monkeypatch.setattr(feed_db, "user_rows", lambda conn, q: read_reorders.append(q.reorders) or user_rows(conn, q))

    from_the_shelf = buy_again()
    db.execute("DELETE FROM item_reorders_packed")  # as before the first repack after migration 0082
    forget_store_shelves()
    from_the_users_rows = buy_again()

    assert read_reorders == [False, True]

    assert [item_id for item_id, _ in from_the_shelf] == ["milk", "eggs", "coffee"]
    assert from_the_users_rows == from_the_shelf  # the same scores (debug) from the same counts
