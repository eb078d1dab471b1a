"""The store-level half of the feed, cached in the container: the catalog and each store's shelf.

A shelf is the store's availability, shelf prices and popularity for every catalog item, and the lists the
store-level sources read, ranked: trending, popular and each aisle's most popular items (new arrivals are ranked
with the catalog); a packed one also carries each item's reorder counts over all users (the same at every store:
packed once, migration 0082, and read and kept once by the container for all its shelves), which buy-again ranks
by. A shelf also keeps the candidates of the sources the same for every user there (feedcore.feed.sources). The
database keeps each store's shelf packed into a few binary values (migration 0040: packed by the recompute after
each run and by the availability route for its store), so reading one is one row, and unpacking it costs no
per-item Python. Containers are reused across requests: a shelf serves the store's requests for
`FEED_STORE_SHELF_TTL_S` seconds, then its pack is checked again (a few bytes when it has not changed). The catalog
is read again only when its version changed. A store whose pack is missing, stale (its availability written since)
or over another catalog is stocked from its rows instead, as before packs. At most `FEED_STORE_SHELF_CACHE_SIZE`
shelves are kept, the least recently used dropped first.

Per-item facts are kept by the item's position in the catalog (item_id order), in arrays: a shelf costs about 37
bytes per catalog item (0.75 MB for 20,000 items) and the counts 16 more once, where Python tuples per item cost
about 20 times as much.
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from operator import itemgetter
from threading import Lock
from time import monotonic
from typing import TYPE_CHECKING

from msgspec import Struct
from msgspec.structs import replace

from feedcore.db.feed import CatalogRow, ShelfPack, StoreRows
from feedcore.feed.config import MAX_POOL

if TYPE_CHECKING:
    from feedcore.feed.pipeline import StoreCandidates

_ACTIVE, CATALOG_CREATED_AT, CATALOG_AISLE = 6, 7, 4  # positions in a CatalogRow


# The store-level candidate lists a shelf keeps (per source and pool, or number of new arrivals): three sources for
# each of three ranking configs (experiment variants) with other pools. At the largest pool (500) with every
# screening kept, a list and its screenings hold ~0.35 MB, and each screening's kept rankings up to ~0.7 MB more
# (four of ~116 KB, ~230 KB with explanations); at the sizes of the default config, ~10 KB and ~25 KB.
STORE_CANDIDATES_KEPT = 9


class RecentlyUsed[K, V]:
    """At most `bound` values made from their keys, the least recently used dropped first; safe for the threads of
    the local server (a value two threads make at once is made twice, and either is kept: they are equal)."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._values: OrderedDict[K, V] = OrderedDict()
        self._lock = Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            if (value := self._values.get(key)) is not None:
                self._values.move_to_end(key)
                return value
        value = make()
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._bound:
                self._values.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._values)


class Catalog(Struct, frozen=True):
    """Every catalog item, by position (item_id order); new arrivals ranked once per load."""

    version: int  # catalog_state.version when read
    rows: list[CatalogRow]
    positions: dict[str, int]  # item_id → position in rows
    new_arrivals: list[int]  # active items, newest first


def stock_catalog(version: int, rows: list[CatalogRow]) -> Catalog:
    positions = {row[0]: position for position, row in enumerate(rows)}
    active = [position for position, row in enumerate(rows) if row[_ACTIVE]]
    newest_first = sorted(active, key=lambda position: rows[position][CATALOG_CREATED_AT], reverse=True)
    return Catalog(version, rows, positions, newest_first)


class StoreShelf(Struct, frozen=True, dict=True, weakref=True):  # dict: room for `candidates`; weakref: feed.service
    """A store as the feed sees it, by catalog position. Ranked lists hold positions, best first."""

    catalog: Catalog
    store_known: bool
    packed_at: datetime | None  # the pack it was unpacked from; None: stocked from the store's rows
    available: bytes | bytearray | None  # 1 where the store sells the item; None: a store the catalog lacks
    prices: array  # the store's shelf price (NaN where it has none: the catalog price applies)
    popularity: array  # raw popularity at the store (0 without any)
    trending: array  # trending score at the store (0 without any)
    # ranked lists keep their first MAX_POOL items, the most a source reads (migration 0098)
    trending_items: array  # items trending at the store (score > 0)
    popular_items: array  # items with popularity at the store
    aisles: dict[str, array]  # per aisle: its active items with popularity at the store
    item_models: dict[str, list[tuple[int, float]]]  # per model: its item-level scores, best first
    item_model_scores: dict[str, dict[int, float]]  # per model: position → its item-level score
    # over all users (the same at every store; migration 0082): the orders holding the item and its buyers, as packed
    # when the shelf was read; None when none were packed over its catalog or the shelf was stocked from the rows
    item_orders: array | None = None
    item_buyers: array | None = None

    @cached_property
    def candidates(self) -> RecentlyUsed[tuple[str, int], StoreCandidates]:
        """The candidates of the sources the same for every user, made as first asked for, and their screenings by
        the store-level filters (feedcore.feed.sources.store_candidates). Not a field: a shelf made by `replace`
        starts its own, and equality and repr leave it out (two threads of the local server asking first at once may
        each make one: either is kept, as with RecentlyUsed's values)."""
        return RecentlyUsed(STORE_CANDIDATES_KEPT)


def stock_shelf(catalog: Catalog, rows: StoreRows) -> StoreShelf:
    """Rank a store's rows into its shelf over `catalog` (rows of items it lacks are left out); ties by
    position, and each list cut at MAX_POOL, as in a packed shelf. Without item-level model scores (see
    with_item_models)."""
    positions, size = catalog.positions, len(catalog.rows)
    available, prices = None, array("d", [_NO_PRICE]) * size
    if rows.availability is not None:
        available = bytearray(size)
        for item_id, sells, price in rows.availability:
            if (position := positions.get(item_id)) is not None:
                available[position] = sells
                if price is not None:
                    prices[position] = price
    popularity, trending = array("d", bytes(8 * size)), array("d", bytes(8 * size))
    rated = []
    for item_id, raw, trend in rows.popularity:
        if (position := positions.get(item_id)) is not None:
            popularity[position], trending[position] = raw, trend
            rated.append(position)
    rated.sort()
    popular = sorted(rated, key=popularity.__getitem__, reverse=True)  # stable: ties stay by position
    aisles: dict[str, list[int]] = {}
    for position in popular:
        row = catalog.rows[position]
        if row[_ACTIVE]:
            aisles.setdefault(row[CATALOG_AISLE], []).append(position)
    trending_items = sorted((p for p in rated if trending[p] > 0), key=trending.__getitem__, reverse=True)
    return StoreShelf(
        catalog, rows.store_known, None, available, prices, popularity, trending,
        array("i", trending_items[:MAX_POOL]), array("i", popular[:MAX_POOL]),
        {aisle: array("i", items[:MAX_POOL]) for aisle, items in aisles.items()}, {}, {},
    )  # fmt: skip


class ReorderCounts(Struct, frozen=True):
    """The items' reorder counts as unpacked (by catalog position), and when they were packed."""

    packed_at: datetime | None
    orders: array
    buyers: array


def unpack_shelf(catalog: Catalog, pack: ShelfPack, held: ReorderCounts | None = None) -> StoreShelf:
    """The shelf of a pack read with its values, over the catalog it was packed over, with the reorder counts read
    with it, or `held` when the pack left them out as the ones held. Without item-level model scores (see
    with_item_models)."""
    aisle_items, aisles, start = _numbers("i", pack.aisle_items), {}, 0
    for size in _numbers("i", pack.aisle_sizes):
        aisles[catalog.rows[aisle_items[start]][CATALOG_AISLE]] = aisle_items[start : start + size]
        start += size
    orders = buyers = None
    if pack.item_orders is not None and pack.item_buyers is not None:
        orders, buyers = _numbers("q", pack.item_orders), _numbers("q", pack.item_buyers)
    elif held is not None and pack.reorders_packed_at is not None and held.packed_at == pack.reorders_packed_at:
        orders, buyers = held.orders, held.buyers
    return StoreShelf(
        catalog, pack.store_known, pack.packed_at, pack.available, _numbers("d", pack.prices),
        _numbers("d", pack.popularity), _numbers("d", pack.trending), _numbers("i", pack.trending_items),
        _numbers("i", pack.popular_items), aisles, {}, {}, orders, buyers,
    )  # fmt: skip


def with_item_models(shelf: StoreShelf, models: tuple[str, ...], scores: list[tuple[str, str, float]]) -> StoreShelf:
    """The shelf with the item-level scores of `models`, ranked: (model, item_id, score) rows of items the
    catalog lacks are left out."""
    positions = shelf.catalog.positions
    item_models: dict[str, list[tuple[int, float]]] = {model: [] for model in models}
    for model, item_id, score in sorted(scores, key=itemgetter(2), reverse=True):
        if (position := positions.get(item_id)) is not None:
            item_models[model].append((position, score))
    return replace(
        shelf, item_models=item_models, item_model_scores={model: dict(ranked) for model, ranked in item_models.items()}
    )


_NO_PRICE = float("nan")
_NETWORK_ORDER_IS_NATIVE = sys.byteorder == "big"


def _numbers(typecode: str, packed: bytes | None) -> array:
    """An array of the numbers packed in network byte order (float8send, int4send, int8send)."""
    numbers = array(typecode)
    numbers.frombytes(packed or b"")
    if not _NETWORK_ORDER_IS_NATIVE:
        numbers.byteswap()
    return numbers


class ShelfReader(Struct, frozen=True):
    """How the cache reads: the catalog (version, rows), a store's pack (given the packed_at of the one held and
    of the reorder counts held), a store's rows (no current pack), the item-level scores of the models."""

    catalog: Callable[[], tuple[int, list[CatalogRow]]]
    pack: Callable[[datetime | None, datetime | None], ShelfPack]
    store_rows: Callable[[], StoreRows]
    item_model_scores: Callable[[], list[tuple[str, str, float]]]


class ShelfCache:
    """The catalog and the store shelves this container has read, each shelf used `ttl_s` seconds before its
    pack is checked again (0: checked for every request); at most `size` shelves, least recently used out. The
    reorder counts, the same at every store, are read and kept once for all shelves (320 KB for 20,000 items)."""

    def __init__(self) -> None:
        self._catalog: Catalog | None = None
        self._shelves: OrderedDict[tuple[str, tuple[str, ...]], tuple[float, StoreShelf]] = OrderedDict()
        self._reorders: ReorderCounts | None = None  # the latest read

    def shelf(self, store_id: str, models: tuple[str, ...], ttl_s: float, size: int, read: ShelfReader) -> StoreShelf:
        """The store's shelf with the item-level scores of `models`: the cached one while it was checked less
        than `ttl_s` ago; else the store's pack, reused when it has not changed, unpacked when it has, and
        the store's rows when the pack is missing, stale or over another catalog than the current one (read
        again when its version moved). Read errors propagate (and drop the shelf: nothing stale is served)."""
        key, now = (store_id, models), monotonic()
        cached = self._shelves.pop(key, None)
        if cached is not None and now - cached[0] < ttl_s:
            self._shelves[key] = cached
            return cached[1]
        held = cached[1] if cached is not None else None
        have_reorders = self._reorders.packed_at if self._reorders is not None else None
        pack = read.pack(held.packed_at if held is not None else None, have_reorders)
        if self._catalog is None or self._catalog.version != pack.catalog_version:
            self._catalog = stock_catalog(*read.catalog())
            self._shelves.clear()  # stocked over the old catalog
            held = None
        catalog = self._catalog
        if pack.packed_at is None or pack.stale or pack.packed_version != catalog.version:
            shelf = stock_shelf(catalog, read.store_rows())
        elif not pack.changed and held is not None and held.packed_at == pack.packed_at:
            shelf = held
        else:
            if not pack.changed:  # the held shelf is gone (another catalog): read the values
                pack = read.pack(None, have_reorders)
            shelf = unpack_shelf(catalog, pack, self._reorders)
            if shelf.item_orders is not None and shelf.item_buyers is not None:
                self._reorders = ReorderCounts(pack.reorders_packed_at, shelf.item_orders, shelf.item_buyers)
        if models:
            shelf = with_item_models(shelf, models, read.item_model_scores())
        self._shelves[key] = (now, shelf)
        while len(self._shelves) > size:
            self._shelves.popitem(last=False)
        return shelf

    def clear(self) -> None:
        """Forget the catalog and every shelf (tests; another database)."""
        self._catalog = None
        self._shelves.clear()
        self._reorders = None
