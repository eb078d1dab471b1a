"""The store shelf (ranked once per load, cached for its TTL) and the candidate sources over it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from feedcore.db.feed import StoreRows, UserItemRow, UserRows
from feedcore.feed import shelves
from feedcore.feed.shelves import ShelfCache, StoreShelf, stock_catalog, stock_shelf
from feedcore.feed.sources import SourceLimits, gather_candidates

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ALL_SOURCES = frozenset({"buy_again", "goes_well_with", "trending", "popular", "favourite_aisles", "new_arrivals"})


def item(item_id: str, aisle: str = "Milk", *, popularity: float | None = 1.0, trending: float = 0.0,
         active: bool = True, age_days: int = 400, available: bool = True) -> dict:  # fmt: skip
    return dict(
        catalog=(item_id, item_id.title(), None, "Dairy", aisle, [], active, NOW - timedelta(days=age_days),
                 Decimal("1.00")),
        availability=(item_id, available, None), popularity=popularity, trending=trending,
    )  # fmt: skip


def shelf_of(*items: dict, models: tuple[str, ...] = (), model_scores: list | None = None) -> StoreShelf:
    """A known store's shelf over a catalog of `items`."""
    rows = StoreRows(
        True, NOW - timedelta(days=10), [i["availability"] for i in items],
        [(i["catalog"][0], i["popularity"], i["trending"]) for i in items if i["popularity"] is not None],
        model_scores or [],
    )  # fmt: skip
    return stock_shelf(stock_catalog([i["catalog"] for i in items]), models, rows)


def ids(shelf: StoreShelf, positions) -> list[str]:
    return [shelf.catalog.rows[p][0] for p in positions]


def user(items: dict[str, UserItemRow] | None = None, aisles: dict[str, float] | None = None, **kinds) -> UserRows:
    return UserRows(items or {}, aisles or {}, kinds.get("recent", {}), kinds.get("pairs", []),
                    kinds.get("model_scores", {}))  # fmt: skip


def bought(count: int, raw: float, hidden: bool = False) -> UserItemRow:
    return UserItemRow(count, NOW - timedelta(days=30), NOW - timedelta(days=5), raw, raw, hidden, None)


def limits(sources=ALL_SOURCES, models=(), pool=2, buy_again_pool=2, favourite_aisles=1) -> SourceLimits:
    return SourceLimits(frozenset(sources), tuple(models), pool, buy_again_pool, favourite_aisles,
                        NOW - timedelta(days=30))  # fmt: skip


def proposed(candidates, source: str) -> list[str]:
    return [c.item_id for c in candidates if c.source == source]


def test_a_shelf_ranks_its_lists_once_from_the_stores_rows() -> None:
    shelf = shelf_of(
        item("milk", popularity=5.0, trending=0.5), item("eggs", "Eggs", popularity=9.0, trending=0.0),
        item("cream", popularity=7.0, trending=2.0, active=False), item("kefir", popularity=None, age_days=3),
        item("yogurt", popularity=1.0, age_days=10, available=False),
    )  # fmt: skip

    assert ids(shelf, shelf.popular_items) == ["eggs", "cream", "milk", "yogurt"]  # items with popularity
    assert ids(shelf, shelf.trending_items) == ["cream", "milk"]  # trending above 0
    assert {aisle: ids(shelf, items) for aisle, items in shelf.aisles.items()} == {
        "Milk": ["milk", "yogurt"], "Eggs": ["eggs"],
    }  # active items only  # fmt: skip
    assert ids(shelf, shelf.catalog.new_arrivals)[:2] == ["kefir", "yogurt"]
    yogurt = shelf.catalog.positions["yogurt"]
    assert (shelf.available[yogurt], shelf.popularity[yogurt], shelf.shelf_prices) == (0, 1.0, {})


def test_an_unknown_store_has_no_availability_and_a_stores_own_price_wins() -> None:
    catalog = stock_catalog([item("milk")["catalog"], item("tea")["catalog"]])
    unknown = stock_shelf(catalog, (), StoreRows(False, None, None, [], []))
    priced = stock_shelf(catalog, (), StoreRows(True, None, [("milk", True, Decimal("0.99"))], [], []))
    limits = SourceLimits(frozenset({"buy_again"}), (), 2, 2, 1, NOW)
    rows = user(items={"milk": bought(2, 1.0), "tea": bought(1, 1.0)})

    assert {c.item_id: (c.available, c.price) for c in gather_candidates(unknown, rows, limits)} == {
        "milk": (None, Decimal("1.00")), "tea": (None, Decimal("1.00")),
    }  # fmt: skip
    assert {c.item_id: (c.available, c.price) for c in gather_candidates(priced, rows, limits)} == {
        "milk": (True, Decimal("0.99")), "tea": (False, Decimal("1.00")),  # not carried by the store
    }  # fmt: skip


def test_the_cache_keeps_a_shelf_for_its_ttl_then_reads_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, reads = [100.0], []
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])

    def read_catalog() -> list:
        reads.append(("catalog", clock[0]))
        return [item("milk")["catalog"]]

    def read_store() -> StoreRows:
        reads.append(("store", clock[0]))
        return StoreRows(True, None, [("milk", True, None)], [], [])

    cache = ShelfCache()
    first = cache.shelf("store-a", (), 30, read_catalog, read_store)
    clock[0] += 20
    assert cache.shelf("store-a", (), 30, read_catalog, read_store) is first
    cache.shelf("store-b", (), 30, read_catalog, read_store)  # each store has its own shelf, one catalog
    clock[0] += 10
    assert cache.shelf("store-a", (), 30, read_catalog, read_store) is not first
    clock[0] += 1
    cache.shelf("store-b", (), 30, read_catalog, read_store)  # read at 120, over a catalog read at 100
    assert reads == [("catalog", 100), ("store", 100), ("store", 120), ("catalog", 130), ("store", 130),
                     ("store", 131)]  # fmt: skip
    cache.shelf("store-a", (), 0, read_catalog, read_store)
    cache.shelf("store-a", (), 0, read_catalog, read_store)
    assert len(reads) == 10  # a TTL of 0 reads both every time


def test_a_failed_read_drops_the_stale_shelf(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    cache = ShelfCache()
    catalog = [item("milk")["catalog"]]
    cache.shelf("store-a", (), 30, lambda: catalog, lambda: StoreRows(True, None, [], [], []))
    clock[0] = 31

    def failing() -> StoreRows:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        cache.shelf("store-a", (), 30, lambda: catalog, failing)
    with pytest.raises(RuntimeError):  # not served from the expired shelf either
        cache.shelf("store-a", (), 30, lambda: catalog, failing)


def test_sources_propose_from_the_shelf_and_the_users_rows() -> None:
    shelf = shelf_of(
        item("milk", popularity=5.0, trending=1.0), item("eggs", "Eggs", popularity=9.0, trending=3.0),
        item("cream", popularity=7.0, trending=2.0), item("kefir", popularity=1.0, age_days=3),
        item("tea", "Tea", popularity=2.0), models=("m",), model_scores=[("m", "tea", 0.3), ("m", "gone", 0.9)],
    )  # fmt: skip
    rows = user(
        items={"milk": bought(3, 9.0), "cream": bought(1, 5.0), "kefir": bought(2, 7.0, hidden=True),
               "gone": bought(5, 50.0), "eggs": UserItemRow(0, None, None, 0.0, 4.0, False, None)},
        aisles={"Tea": 1.0, "Milk": 0.5},
        pairs=[("tea", 0.8, "milk")],
        model_scores={"m": {"eggs": 0.7, "milk": 0.1}},
    )  # fmt: skip

    candidates = gather_candidates(shelf, rows, limits(models=("m",), buy_again_pool=3))

    assert proposed(candidates, "buy_again") == ["cream", "milk"]  # the top 3 purchased, not hidden: in the catalog
    assert proposed(candidates, "trending") == ["cream", "eggs"]
    assert proposed(candidates, "popular") == ["cream", "eggs"]
    assert proposed(candidates, "favourite_aisles") == ["tea"]  # the user's top aisle
    assert proposed(candidates, "new_arrivals") == ["kefir"]
    assert proposed(candidates, "model:m") == ["eggs", "milk", "tea"]  # the user's two, then the item-level one
    (tea,) = [c for c in candidates if c.source == "goes_well_with"]
    assert (tea.seed_item_id, tea.seed_name, tea.source_score) == ("milk", "Milk", 0.8)
    assert tea.model_score == 0.3 and tea.aisle_affinity_raw == 1.0
    eggs = next(c for c in candidates if c.item_id == "eggs")
    assert (eggs.affinity_raw, eggs.model_score, eggs.popularity_raw, eggs.store_known) == (4.0, 0.7, 9.0, True)
    assert [(c.source, c.item_id) for c in candidates] == sorted((c.source, c.item_id) for c in candidates)


def test_sources_not_shown_propose_nothing() -> None:
    shelf = shelf_of(item("milk", trending=1.0), item("kefir", age_days=1))

    candidates = gather_candidates(shelf, user(items={"milk": bought(2, 1.0)}), limits(sources={"popular"}))

    assert {c.source for c in candidates} == {"popular"}
