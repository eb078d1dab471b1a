"""The recompute packs every store's shelf in shares side by side, on connections of their own: the packs are
those of packing every store in one transaction, byte for byte, and every store (and '*') is packed once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from feedcore.api.catalog_models import CatalogItem, Store, StoreAvailability
from feedcore.db import catalog as catalog_db
from feedcore.db import feed as feed_db
from feedcore.feed.config import MAX_POOL
from feedcore.feed.shelves import stock_catalog, stock_shelf, unpack_shelf
from feedcore.scoring import service
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.conftest import wait_until_blocked_by
from tests.factories import ITEMS, OTHER_STORE, STORE, create_catalog, purchase, record

PACKED_COLUMNS = ("store_known", "catalog_version", "stale", "available", "prices", "popularity", "trending",
                  "trending_items", "popular_items", "aisle_items", "aisle_sizes")  # fmt: skip
SCORES = [PACKED_COLUMNS.index(c) for c in ("popularity", "trending", "trending_items", "popular_items", "aisle_items",
                                            "aisle_sizes")]  # fmt: skip
PRICES = PACKED_COLUMNS.index("prices")
AVAILABLE = PACKED_COLUMNS.index("available")
MORE_STORES = ("store-c", "store-d", "store-e")


def _price_behind_the_triggers(db: psycopg.Connection, store_id: str, price: float) -> None:
    """The store's price of eggs written behind the triggers' back (no route, no stale mark): only a whole pack
    reads it."""
    db.execute("SET session_replication_role = replica")
    db.execute("UPDATE store_availability SET price = %s WHERE store_id = %s AND item_id = 'eggs'", (price, store_id))
    db.execute("RESET session_replication_role")


def _packs(db: psycopg.Connection) -> dict[str, tuple]:
    columns = ", ".join(PACKED_COLUMNS)
    return {row[0]: row[1:] for row in db.execute(f"SELECT store_id, {columns} FROM store_shelves").fetchall()}


@pytest.mark.parametrize("shares", [2, 3])
def test_the_recompute_packs_every_store_as_packing_them_in_one_transaction_does(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, shares: int
) -> None:
    monkeypatch.setattr(service, "PACK_SHARES", shares)
    create_catalog(db)
    catalog_db.upsert_stores(db, [Store(store_id=store_id, name=store_id) for store_id in MORE_STORES])
    record(
        purchase("user-1", items=("eggs", "bananas", "coffee"), store_id=STORE),
        purchase("user-2", items=("eggs", "milk"), store_id=OTHER_STORE),
        purchase("user-3", items=("bananas",), store_id="store-c"),
    )
    db.execute("DELETE FROM store_shelves")

    recompute_scores(RecomputeRequest())
    packed_by_the_run = _packs(db)
    feed_db.pack_store_shelves(db)

    assert packed_by_the_run == _packs(db)
    assert set(packed_by_the_run) == {STORE, OTHER_STORE, *MORE_STORES, "*"}
    popular = PACKED_COLUMNS.index("popular_items")
    assert packed_by_the_run[STORE][popular] and packed_by_the_run["store-c"][popular]
    assert not packed_by_the_run["store-d"][popular]


def test_a_run_repacks_only_the_scores_of_a_current_pack_and_packs_a_stale_one_whole(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("eggs", "milk"), store_id=STORE))
    recompute_scores(RecomputeRequest())
    _price_behind_the_triggers(db, STORE, 9.99)
    db.execute("UPDATE store_availability SET price = 7.77 WHERE store_id = %s AND item_id = 'eggs'", (OTHER_STORE,))
    before = _packs(db)
    assert before[OTHER_STORE][PACKED_COLUMNS.index("stale")]  # the trigger marked it

    record(purchase("user-2", items=("eggs", "coffee"), store_id=STORE))
    recompute_scores(RecomputeRequest())
    by_the_run = _packs(db)
    feed_db.pack_store_shelves(db)
    whole = _packs(db)

    assert [by_the_run[STORE][i] for i in SCORES] == [whole[STORE][i] for i in SCORES]
    assert by_the_run[STORE][SCORES[0]] != before[STORE][SCORES[0]]
    assert by_the_run[STORE][PRICES] == before[STORE][PRICES] != whole[STORE][PRICES]
    assert by_the_run[OTHER_STORE] == whole[OTHER_STORE]  # stale: packed whole, with the new price
    assert by_the_run[OTHER_STORE][PRICES] != before[OTHER_STORE][PRICES]


def test_one_repack_of_a_share_repacks_its_current_packs_and_packs_the_others_whole(db: psycopg.Connection) -> None:
    """Migration 0123 repacks a share's current packs in one statement, then packs the rest whole: a stale pack, a
    store without one; a name the catalog does not know as a store is left out."""
    create_catalog(db)
    catalog_db.upsert_stores(db, [Store(store_id="store-c", name="store-c")])
    record(purchase("user-1", items=("eggs", "milk"), store_id=STORE),
           purchase("user-2", items=("eggs", "coffee"), store_id=OTHER_STORE))  # fmt: skip
    recompute_scores(RecomputeRequest())
    db.execute("DELETE FROM store_shelves WHERE store_id = 'store-c'")
    _price_behind_the_triggers(db, STORE, 9.99)
    db.execute("UPDATE store_availability SET price = 7.77 WHERE store_id = %s AND item_id = 'eggs'", (OTHER_STORE,))
    before = _packs(db)
    db.execute("INSERT INTO item_popularity (store_id, item_id, raw_score, short_raw, trending_score, updated_at) "
               "SELECT store_id, 'coffee', 50, 50, 2, now() FROM store_shelves "
               "ON CONFLICT (store_id, item_id) DO UPDATE SET raw_score = 50, trending_score = 2")  # fmt: skip

    packed = feed_db.repack_store_shelves_scores(db, [STORE, OTHER_STORE, "store-c", "*", "store-unknown"])
    by_the_repack = _packs(db)
    feed_db.pack_store_shelves(db)
    whole = _packs(db)

    assert packed == 4
    assert set(by_the_repack) == {STORE, OTHER_STORE, "store-c", "*"}
    for store_id in (STORE, "*"):  # repacked: the prices written behind the triggers' back are not read
        assert [by_the_repack[store_id][i] for i in SCORES] == [whole[store_id][i] for i in SCORES]
        assert by_the_repack[store_id][SCORES[0]] != before[store_id][SCORES[0]]
    assert by_the_repack[STORE][PRICES] == before[STORE][PRICES] != whole[STORE][PRICES]
    assert by_the_repack[OTHER_STORE] == whole[OTHER_STORE]  # stale: packed whole, with the new price
    assert by_the_repack[OTHER_STORE][PRICES] != before[OTHER_STORE][PRICES]
    assert by_the_repack["store-c"] == whole["store-c"]


def _shelf_positions(db: psycopg.Connection) -> list[tuple]:
    return db.execute(
        "SELECT item_id, position, aisle_rank, active, catalog_version = (SELECT version FROM catalog_state) "
        "FROM shelf_positions ORDER BY position"
    ).fetchall()


def test_a_run_repacks_the_scores_over_the_shelf_positions_it_keeps_for_the_current_catalog(
    db: psycopg.Connection,
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("eggs", "milk", "discontinued"), store_id=STORE))
    recompute_scores(RecomputeRequest())
    first = _shelf_positions(db)
    # The catalog moves: a new item in an aisle that sorts first, and milk no longer sold.
    catalog_db.upsert_items(db, [CatalogItem(item_id="apples", name="Apples", department="Produce", aisle="Apples",
                                             price=1.99),
                                 CatalogItem(item_id="milk", name="Whole Milk 1 gal", department="Dairy & Eggs",
                                             aisle="Milk", price=3.49, active=False)])  # fmt: skip
    record(purchase("user-2", items=("apples", "eggs", "coffee"), store_id=STORE))
    recompute_scores(RecomputeRequest())  # the catalog moved: packed whole, the positions brought up to it
    _price_behind_the_triggers(db, STORE, 9.99)
    before = _packs(db)
    record(purchase("user-3", items=("apples", "bananas"), store_id=STORE))
    recompute_scores(RecomputeRequest())
    by_the_run = _packs(db)
    feed_db.pack_store_shelves(db)
    whole = _packs(db)

    # item_id order; aisles Apples 1, Bread 2, Cereal 3, Coffee 4, Eggs 5, Fresh Fruit 6, Milk 7, Red Wine 8
    assert first == [("bananas", 0, 5, True, True), ("coffee", 1, 3, True, True), ("discontinued", 2, 2, False, True),
                     ("eggs", 3, 4, True, True), ("milk", 4, 6, True, True), ("only-b", 5, 1, True, True),
                     ("wine", 6, 7, True, True)]  # fmt: skip
    assert _shelf_positions(db) == [
        ("apples", 0, 1, True, True), ("bananas", 1, 6, True, True), ("coffee", 2, 4, True, True),
        ("discontinued", 3, 3, False, True), ("eggs", 4, 5, True, True), ("milk", 5, 7, False, True),
        ("only-b", 6, 2, True, True), ("wine", 7, 8, True, True),
    ]  # fmt: skip
    # repacked, not packed whole (the price written behind the triggers' back is not in it), to the same bytes
    assert by_the_run[STORE][PRICES] == before[STORE][PRICES] != whole[STORE][PRICES]
    assert [by_the_run[STORE][i] for i in SCORES] == [whole[STORE][i] for i in SCORES]
    assert by_the_run[STORE][SCORES[0]] != before[STORE][SCORES[0]]
    assert by_the_run["*"] == whole["*"]


def test_a_repack_over_shelf_positions_of_another_catalog_packs_the_shelf_whole(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("eggs", "milk"), store_id=STORE))
    recompute_scores(RecomputeRequest())
    _price_behind_the_triggers(db, STORE, 9.99)
    db.execute("UPDATE shelf_positions SET catalog_version = catalog_version - 1")
    before = _packs(db)

    feed_db.repack_store_shelves_scores(db, [STORE])
    repacked = _packs(db)
    feed_db.pack_store_shelves(db, [STORE])

    assert repacked[STORE][PRICES] != before[STORE][PRICES]
    assert repacked[STORE] == _packs(db)[STORE]


def test_a_shelfs_ranked_lists_keep_the_first_items_a_source_can_read(db: psycopg.Connection) -> None:
    """Past MAX_POOL items a list is cut (a source reads at most that many): whole packs and repacks alike, and the
    shelf ranked from the store's rows; the dense arrays keep every item."""
    create_catalog(db)
    rated = MAX_POOL + 20  # in one aisle, scores tied in pairs (ties by position)
    db.execute(
        """
        INSERT INTO items (item_id, name, department, aisle, price)
        SELECT 'bulk-' || lpad(n::text, 4, '0'), 'Bulk ' || n, 'Pantry', 'Bulk', 1 FROM generate_series(1, %(n)s) n
        """,
        {"n": rated},
    )
    db.execute(
        """
        INSERT INTO item_popularity (store_id, item_id, raw_score, short_raw, trending_score, updated_at)
        SELECT s, 'bulk-' || lpad(n::text, 4, '0'), n / 2, n / 2, (%(n)s - n + 1) / 2, now()
        FROM generate_series(1, %(n)s) n CROSS JOIN unnest(ARRAY[%(store)s, '*']) s
        """,
        {"n": rated, "store": STORE},
    )
    feed_db.pack_store_shelves(db)
    whole = _packs(db)
    feed_db.refresh_shelf_positions(db)
    feed_db.repack_store_shelves_scores(db, [STORE, "*"])
    repacked = _packs(db)
    catalog = stock_catalog(*feed_db.catalog(db))

    for store_id in (STORE, "*"):
        assert repacked[store_id] == whole[store_id]
        shelf = unpack_shelf(catalog, feed_db.store_shelf_pack(db, store_id, None))
        bulk = sorted((p for item_id, p in catalog.positions.items() if item_id.startswith("bulk-")),
                      key=lambda p: (-shelf.popularity[p], p))  # fmt: skip
        assert list(shelf.popular_items) == bulk[:MAX_POOL]
        assert list(shelf.aisles["Bulk"]) == bulk[:MAX_POOL]
        assert list(shelf.trending_items) == sorted(bulk, key=lambda p: (-shelf.trending[p], p))[:MAX_POOL]
        assert sum(1 for p in bulk if shelf.trending[p] > 0) == rated - 1  # the last has none: not in the list
        assert len(shelf.popularity) == len(catalog.rows)
        stocked = stock_shelf(catalog, feed_db.store_rows(db, store_id))
        assert (stocked.trending_items, stocked.popular_items, stocked.aisles) == (
            shelf.trending_items, shelf.popular_items, shelf.aisles)  # fmt: skip


def test_an_availability_change_committed_while_a_run_packs_its_store_whole_stays_in_the_pack(
    db: psycopg.Connection, database_url: str
) -> None:
    create_catalog(db)
    record(purchase("user-1", items=("eggs", "milk")))
    recompute_scores(RecomputeRequest())
    # A catalog write: every pack is over an older catalog now, so the next run packs every store whole.
    milk = next(item for item in ITEMS if item.item_id == "milk")
    catalog_db.upsert_items(db, [milk.model_copy(update={"price": 3.79})])

    run_ended = threading.Event()
    with psycopg.connect(database_url) as route:
        # The availability route's transaction (feedcore.ingestion.catalog.update_availability): milk is sold out.
        catalog_db.ensure_store(route, STORE, None)
        catalog_db.upsert_availability(route, [StoreAvailability(store_id=STORE, item_id="milk", available=False)])
        # A run starts packing meanwhile, and comes to the store while the route has not committed.
        threading.Thread(target=lambda: (recompute_scores(RecomputeRequest()), run_ended.set())).start()
        wait_until_blocked_by(route)
        feed_db.pack_store_shelves(route, [STORE])
    assert run_ended.wait(30)
    sold_by_the_run = _packs(db)[STORE][AVAILABLE]
    recompute_scores(RecomputeRequest())  # repacks only the scores of a current pack
    sold_after_the_next_run = _packs(db)[STORE][AVAILABLE]
    feed_db.pack_store_shelves(db, [STORE])  # what the store's rows say

    assert sold_by_the_run == sold_after_the_next_run == _packs(db)[STORE][AVAILABLE]
