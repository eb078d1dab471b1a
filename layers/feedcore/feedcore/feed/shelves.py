"""The store-level half of the feed, cached in the container: the catalog and each store's shelf.

A shelf is the store's availability, shelf prices and popularity for every catalog item, and the lists the
store-level sources read, ranked once per load: trending, popular and each aisle's most popular items (new
arrivals are ranked with the catalog). Containers are reused across requests, so what is read once serves
the store's requests for `FEED_STORE_SHELF_TTL_S` seconds, counted from the older of the catalog's and the
store's reads; a request then reads only the user's own rows. Catalog, availability, price and popularity
changes reach the feed within that time.

Per-item facts are kept by the item's position in the catalog, in arrays: a shelf costs about 30 bytes per
catalog item (0.6 MB for 20,000 items), where Python tuples per item cost about 20 times as much.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from time import monotonic

from feedcore.db.feed import CatalogRow, StoreRows

_ACTIVE, _CREATED_AT, _AISLE = 6, 7, 4  # positions in a CatalogRow


@dataclass(frozen=True)
class Catalog:
    """Every catalog item, by position; new arrivals ranked once per load."""

    rows: list[CatalogRow]
    positions: dict[str, int]  # item_id → position in rows
    new_arrivals: list[int]  # active items, newest first


def stock_catalog(rows: list[CatalogRow]) -> Catalog:
    positions = {row[0]: position for position, row in enumerate(rows)}
    active = [position for position, row in enumerate(rows) if row[_ACTIVE]]
    return Catalog(rows, positions, sorted(active, key=lambda position: rows[position][_CREATED_AT], reverse=True))


@dataclass(frozen=True)
class StoreShelf:
    """A store as the feed sees it, by catalog position. Ranked lists hold positions, best first."""

    catalog: Catalog
    store_known: bool
    epoch: datetime | None
    available: bytearray | None  # 1 where the store sells the item; None for a store the catalog does not know
    shelf_prices: dict[int, float]  # where the store has its own price
    popularity: array  # raw popularity at the store (0 without any)
    trending: array  # trending score at the store (0 without any)
    trending_items: array  # items trending at the store (score > 0)
    popular_items: array  # items with popularity at the store
    aisles: dict[str, array]  # per aisle: its active items with popularity at the store
    item_models: dict[str, list[tuple[int, float]]]  # per model: its item-level scores, best first
    item_model_scores: dict[str, dict[int, float]]  # per model: position → its item-level score


def stock_shelf(catalog: Catalog, models: tuple[str, ...], rows: StoreRows) -> StoreShelf:
    """Rank a store's rows into its shelf over `catalog` (rows of items it lacks are left out)."""
    positions, size = catalog.positions, len(catalog.rows)
    available, shelf_prices = None, {}
    if rows.availability is not None:
        available = bytearray(size)
        for item_id, sells, price in rows.availability:
            if (position := positions.get(item_id)) is not None:
                available[position] = sells
                if price is not None:
                    shelf_prices[position] = price
    popularity, trending = array("d", bytes(8 * size)), array("d", bytes(8 * size))
    rated = []
    for item_id, raw, trend in rows.popularity:
        if (position := positions.get(item_id)) is not None:
            popularity[position], trending[position] = raw, trend
            rated.append(position)
    popular = sorted(rated, key=popularity.__getitem__, reverse=True)
    aisles: dict[str, list[int]] = {}
    for position in popular:
        row = catalog.rows[position]
        if row[_ACTIVE]:
            aisles.setdefault(row[_AISLE], []).append(position)
    trending_items = sorted((p for p in rated if trending[p] > 0), key=trending.__getitem__, reverse=True)
    item_models: dict[str, list[tuple[int, float]]] = {model: [] for model in models}
    for model, item_id, score in sorted(rows.item_model_scores, key=itemgetter(2), reverse=True):
        if (position := positions.get(item_id)) is not None:
            item_models[model].append((position, score))
    return StoreShelf(
        catalog, rows.store_known, rows.epoch, available, shelf_prices, popularity, trending,
        array("i", trending_items), array("i", popular),
        {aisle: array("i", items) for aisle, items in aisles.items()}, item_models,
        {model: dict(ranked) for model, ranked in item_models.items()},
    )  # fmt: skip


class ShelfCache:
    """The catalog and the store shelves this container has read, each kept `ttl_s` seconds (0: not kept)."""

    def __init__(self) -> None:
        self._catalog: tuple[float, Catalog] | None = None
        self._shelves: dict[tuple[str, tuple[str, ...]], tuple[float, StoreShelf]] = {}

    def shelf(
        self,
        store_id: str,
        models: tuple[str, ...],
        ttl_s: float,
        read_catalog: Callable[[], list[CatalogRow]],
        read_store: Callable[[], StoreRows],
    ) -> StoreShelf:
        """The store's shelf with the item-level scores of `models`: the cached one while both it and its
        catalog were read less than `ttl_s` ago, else one stocked from `read_store()` over a catalog from
        `read_catalog()` when the cached one is as old. Read errors propagate (nothing stale is served)."""
        key, now = (store_id, models), monotonic()
        cached = self._shelves.get(key)
        if cached is not None and now - cached[0] < ttl_s:
            return cached[1]
        self._shelves.pop(key, None)
        if self._catalog is None or now - self._catalog[0] >= ttl_s:
            # Every shelf counts its age from the catalog it was stocked over, so all have expired with it:
            # dropping them keeps only the stores asked for since, and no old catalog alive.
            self._shelves.clear()
            self._catalog = (now, stock_catalog(read_catalog()))
        catalog_read_at, catalog = self._catalog
        shelf = stock_shelf(catalog, models, read_store())
        if ttl_s > 0:
            self._shelves[key] = (min(now, catalog_read_at), shelf)
        return shelf

    def clear(self) -> None:
        """Forget the catalog and every shelf (tests; another database)."""
        self._catalog = None
        self._shelves.clear()
