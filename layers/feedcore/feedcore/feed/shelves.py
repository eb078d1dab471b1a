"""The store-level half of the feed, cached in the container: a store's shelf.

A shelf is every catalog item with the store's availability, shelf price and popularity, and the lists the
store-level sources read, ranked once per load: trending, popular, each aisle's most popular items, new
arrivals and the item-level model scores. Containers are reused across requests, so a shelf read once
serves the store's requests for `FEED_STORE_SHELF_TTL_S` seconds; a request then reads only the user's own
rows. Catalog, availability, price and popularity changes reach the feed within that time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from time import monotonic

from feedcore.db.feed import ShelfRow, StoreShelfRows

# Positions in a ShelfRow (see feedcore.db.feed).
_ITEM_ID, _AISLE, _ACTIVE, _CREATED_AT, _POPULARITY, _TRENDING = 0, 4, 6, 7, 10, 11


@dataclass(frozen=True)
class StoreShelf:
    """A store as the feed sees it, ranked once per load. Lists hold ShelfRows, best first."""

    store_id: str
    store_known: bool
    epoch: datetime | None
    items: dict[str, ShelfRow]  # every catalog item
    trending: list[ShelfRow]  # trending at the store (score > 0)
    popular: list[ShelfRow]  # items with popularity at the store
    aisles: dict[str, list[ShelfRow]]  # per aisle: its active items with popularity at the store
    new_arrivals: list[ShelfRow]  # active items, newest first
    item_models: dict[str, list[tuple[ShelfRow, float]]]  # per model: its item-level scores
    item_model_scores: dict[str, dict[str, float]]  # per model: item → its item-level score


def stock_shelf(store_id: str, models: tuple[str, ...], rows: StoreShelfRows) -> StoreShelf:
    """Rank a store's rows into its shelf (with the item-level scores of `models`)."""
    items = {row[_ITEM_ID]: row for row in rows.items}
    rated = [row for row in rows.items if row[_POPULARITY] is not None]
    popular = sorted(rated, key=itemgetter(_POPULARITY), reverse=True)
    trending = sorted((row for row in rated if row[_TRENDING] > 0), key=itemgetter(_TRENDING), reverse=True)
    aisles: dict[str, list[ShelfRow]] = {}
    for row in popular:
        if row[_ACTIVE]:
            aisles.setdefault(row[_AISLE], []).append(row)
    new_arrivals = sorted((row for row in rows.items if row[_ACTIVE]), key=itemgetter(_CREATED_AT), reverse=True)
    item_models: dict[str, list[tuple[ShelfRow, float]]] = {model: [] for model in models}
    for model, item_id, score in sorted(rows.item_model_scores, key=itemgetter(2), reverse=True):
        if item_id in items:
            item_models[model].append((items[item_id], score))
    item_model_scores = {
        model: {row[_ITEM_ID]: score for row, score in ranked} for model, ranked in item_models.items()
    }
    return StoreShelf(
        store_id, rows.store_known, rows.epoch, items, trending, popular, aisles, new_arrivals, item_models,
        item_model_scores,
    )  # fmt: skip


class ShelfCache:
    """The shelves this container has loaded, each kept `ttl_s` seconds from its load (0: not kept)."""

    def __init__(self) -> None:
        self._shelves: dict[tuple[str, tuple[str, ...]], tuple[float, StoreShelf]] = {}

    def shelf(
        self, store_id: str, models: tuple[str, ...], ttl_s: float, load: Callable[[], StoreShelfRows]
    ) -> StoreShelf:
        """The store's shelf with the item-level scores of `models`: the cached one while it is fresher than
        `ttl_s`, else one stocked from `load()` (whose errors propagate; the stale shelf is dropped)."""
        key, now = (store_id, models), monotonic()
        cached = self._shelves.get(key)
        if cached is not None and now - cached[0] < ttl_s:
            return cached[1]
        self._shelves.pop(key, None)
        shelf = stock_shelf(store_id, models, load())
        if ttl_s > 0:
            self._shelves[key] = (now, shelf)
        return shelf

    def clear(self) -> None:
        """Forget every shelf (tests; another database)."""
        self._shelves.clear()
