"""The store shelf (ranked once per load, cached for its TTL) and the candidate sources over it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from feedcore.db.feed import StoreShelfRows, UserItemRow, UserRows
from feedcore.feed import shelves
from feedcore.feed.shelves import ShelfCache, stock_shelf
from feedcore.feed.sources import SourceLimits, gather_candidates

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ALL_SOURCES = frozenset({"buy_again", "goes_well_with", "trending", "popular", "favourite_aisles", "new_arrivals"})


def row(item_id: str, aisle: str = "Milk", *, popularity: float | None = 1.0, trending: float | None = 0.0,
        active: bool = True, age_days: int = 400, available: bool | None = True) -> tuple:  # fmt: skip
    return (item_id, item_id.title(), None, "Dairy", aisle, [], active, NOW - timedelta(days=age_days), available,
            Decimal("1.00"), popularity, trending)  # fmt: skip


def shelf_rows(*rows: tuple, model_scores: list[tuple[str, str, float]] | None = None) -> StoreShelfRows:
    return StoreShelfRows(True, NOW - timedelta(days=10), list(rows), model_scores or [])


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
    shelf = stock_shelf("store-a", (), shelf_rows(
        row("milk", popularity=5.0, trending=0.5), row("eggs", "Eggs", popularity=9.0, trending=0.0),
        row("cream", popularity=7.0, trending=2.0, active=False), row("kefir", popularity=None, age_days=3),
        row("yogurt", popularity=1.0, age_days=10),
    ))  # fmt: skip

    assert [r[0] for r in shelf.popular] == ["eggs", "cream", "milk", "yogurt"]  # only items with popularity
    assert [r[0] for r in shelf.trending] == ["cream", "milk"]  # trending above 0
    assert {aisle: [r[0] for r in rows] for aisle, rows in shelf.aisles.items()} == {
        "Milk": ["milk", "yogurt"], "Eggs": ["eggs"],
    }  # active items only  # fmt: skip
    assert [r[0] for r in shelf.new_arrivals][:2] == ["kefir", "yogurt"]
    assert "cream" in shelf.items and len(shelf.items) == 5


def test_the_cache_keeps_a_shelf_for_its_ttl_then_reads_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, loads = [100.0], []
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])

    def load() -> StoreShelfRows:
        loads.append(clock[0])
        return shelf_rows(row("milk"))

    cache = ShelfCache()
    first = cache.shelf("store-a", (), 30, load)
    clock[0] += 29.9
    assert cache.shelf("store-a", (), 30, load) is first
    cache.shelf("store-b", (), 30, load)  # each store has its own shelf
    clock[0] += 0.1
    assert cache.shelf("store-a", (), 30, load) is not first
    assert loads == [100.0, 129.9, 130.0]
    cache.shelf("store-a", (), 0, load)
    cache.shelf("store-a", (), 0, load)
    assert len(loads) == 5  # a TTL of 0 reads every time


def test_a_failed_read_drops_the_stale_shelf(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    cache = ShelfCache()
    cache.shelf("store-a", (), 30, lambda: shelf_rows(row("milk")))
    clock[0] = 31

    def failing() -> StoreShelfRows:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        cache.shelf("store-a", (), 30, failing)
    with pytest.raises(RuntimeError):  # not served from the expired shelf either
        cache.shelf("store-a", (), 30, failing)


def test_sources_propose_from_the_shelf_and_the_users_rows() -> None:
    shelf = stock_shelf("store-a", ("m",), shelf_rows(
        row("milk", popularity=5.0, trending=1.0), row("eggs", "Eggs", popularity=9.0, trending=3.0),
        row("cream", popularity=7.0, trending=2.0), row("kefir", popularity=1.0, age_days=3),
        row("tea", "Tea", popularity=2.0), model_scores=[("m", "tea", 0.3), ("m", "gone", 0.9)],
    ))  # fmt: skip
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
    shelf = stock_shelf("store-a", (), shelf_rows(row("milk", trending=1.0), row("kefir", age_days=1)))

    candidates = gather_candidates(shelf, user(items={"milk": bought(2, 1.0)}), limits(sources={"popular"}))

    assert {c.source for c in candidates} == {"popular"}
