"""The recompute packs every store's shelf in shares side by side, on connections of their own: the packs are
those of packing every store in one transaction, byte for byte, and every store (and '*') is packed once."""

from __future__ import annotations

import psycopg
import pytest

from feedcore.api.catalog_models import Store
from feedcore.db import catalog as catalog_db
from feedcore.db import feed as feed_db
from feedcore.scoring import service
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.factories import OTHER_STORE, STORE, create_catalog, purchase, record

PACKED_COLUMNS = ("store_known", "catalog_version", "stale", "available", "prices", "popularity", "trending",
                  "trending_items", "popular_items", "aisle_items", "aisle_sizes")  # fmt: skip
MORE_STORES = ("store-c", "store-d", "store-e")


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
    # A price written behind the triggers' back (no route, no stale mark): only a whole pack reads it.
    db.execute("SET session_replication_role = replica")
    db.execute("UPDATE store_availability SET price = 9.99 WHERE store_id = %s AND item_id = 'eggs'", (STORE,))
    db.execute("RESET session_replication_role")
    db.execute("UPDATE store_availability SET price = 7.77 WHERE store_id = %s AND item_id = 'eggs'", (OTHER_STORE,))
    before = _packs(db)
    assert before[OTHER_STORE][PACKED_COLUMNS.index("stale")]  # the trigger marked it

    record(purchase("user-2", items=("eggs", "coffee"), store_id=STORE))
    recompute_scores(RecomputeRequest())
    by_the_run = _packs(db)
    feed_db.pack_store_shelves(db)
    whole = _packs(db)

    scores = [PACKED_COLUMNS.index(c) for c in ("popularity", "trending", "trending_items", "popular_items",
                                                "aisle_items", "aisle_sizes")]  # fmt: skip
    prices = PACKED_COLUMNS.index("prices")
    assert [by_the_run[STORE][i] for i in scores] == [whole[STORE][i] for i in scores]
    assert by_the_run[STORE][scores[0]] != before[STORE][scores[0]]
    assert by_the_run[STORE][prices] == before[STORE][prices] != whole[STORE][prices]
    assert by_the_run[OTHER_STORE] == whole[OTHER_STORE]  # stale: packed whole, with the new price
    assert by_the_run[OTHER_STORE][prices] != before[OTHER_STORE][prices]
