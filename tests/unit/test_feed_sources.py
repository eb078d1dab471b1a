"""The store shelf (packed in the database, or ranked from the store's rows; cached for its TTL) and the
candidate sources over it."""

from __future__ import annotations

import math
import sys
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest
from msgspec.structs import astuple, replace
from pydantic import ValidationError

from feedcore.db.feed import Candidate, CatalogRow, ShelfPack, StoreRows, UserItemRow, UserRows
from feedcore.db.scores import TRENDING_KEPT_FRESH
from feedcore.feed import service, shelves
from feedcore.feed.config import (
    ALL_FILTERS,
    MAX_CANDIDATES_PER_SLOT,
    MAX_POOL,
    MAX_SECTION_SIZE,
    FeedConfig,
    SectionConfig,
    default_ranking_config,
)
from feedcore.feed.pipeline import (
    CANDIDATE_SIGNALS,
    SCREENINGS_KEPT,
    Ranked,
    RankingContext,
    apply_filters,
    filter_sources,
    rank,
    select_sections,
)
from feedcore.feed.scoring import BuyAgainParams
from feedcore.feed.service import _source_limits
from feedcore.feed.shelves import (
    STORE_CANDIDATES_KEPT,
    RecentlyUsed,
    ShelfCache,
    ShelfReader,
    StoreShelf,
    stock_catalog,
    stock_shelf,
    unpack_shelf,
    with_item_models,
)
from feedcore.feed.sources import SourceLimits, aisle_affinities, gather_candidates, store_candidates
from feedcore.settings import FeedSettings

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
ALL_SOURCES = frozenset({"buy_again", "goes_well_with", "trending", "popular", "favourite_aisles", "new_arrivals"})


def item(item_id: str, aisle: str = "Milk", *, popularity: float | None = 1.0, trending: float = 0.0,
         active: bool = True, age_days: int = 400, available: bool = True) -> dict:  # fmt: skip
    return dict(
        catalog=(item_id, item_id.title(), None, "Dairy", aisle, [], active, NOW - timedelta(days=age_days),
                 1.0),
        availability=(item_id, available, None), popularity=popularity, trending=trending,
    )  # fmt: skip


def shelf_of(*items: dict, models: tuple[str, ...] = (), model_scores: list | None = None) -> StoreShelf:
    """A known store's shelf over a catalog of `items`, in item_id order as the database reads it."""
    rows = StoreRows(
        True, [i["availability"] for i in items],
        [(i["catalog"][0], i["popularity"], i["trending"]) for i in items if i["popularity"] is not None],
    )  # fmt: skip
    shelf = stock_shelf(stock_catalog(1, sorted(i["catalog"] for i in items)), rows)
    return with_item_models(shelf, models, model_scores or []) if models else shelf


def ids(shelf: StoreShelf, positions) -> list[str]:
    return [shelf.catalog.rows[p][0] for p in positions]


def user(items: dict[str, UserItemRow] | None = None, **kinds) -> UserRows:
    return UserRows(items or {}, kinds.get("recent", {}), kinds.get("pairs", []), kinds.get("model_scores", {}))


def bought(count: int, raw: float, hidden: bool = False) -> UserItemRow:
    return UserItemRow(count, NOW - timedelta(days=30), NOW - timedelta(days=5), raw, raw, hidden, None)


def limits(sources=ALL_SOURCES, models=(), pool=2, buy_again_pool=2, favourite_aisles=1) -> SourceLimits:
    return SourceLimits(frozenset(sources), tuple(models), pool, buy_again_pool, favourite_aisles,
                        NOW - timedelta(days=30))  # fmt: skip


def every_candidate(shelf: StoreShelf, rows: UserRows, aisles: dict, limits: SourceLimits) -> list[Candidate]:
    """gather_candidates' candidates of every source, by source."""
    return [c for source in gather_candidates(shelf, rows, aisles, limits) for c in source.candidates]


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
    assert (shelf.available[yogurt], shelf.popularity[yogurt]) == (0, 1.0)
    assert all(math.isnan(price) for price in shelf.prices)  # no shelf prices: the catalog's apply


def test_an_unknown_store_has_no_availability_and_a_stores_own_price_wins() -> None:
    catalog = stock_catalog(1, [item("milk")["catalog"], item("tea")["catalog"]])
    unknown = stock_shelf(catalog, StoreRows(False, None, []))
    priced = stock_shelf(catalog, StoreRows(True, [("milk", True, 0.99)], []))
    limits = SourceLimits(frozenset({"buy_again"}), (), 2, 2, 1, NOW)
    rows = user(items={"milk": bought(2, 1.0), "tea": bought(1, 1.0)})

    assert {c.item_id: (c.available, c.price) for c in every_candidate(unknown, rows, {}, limits)} == {
        "milk": (None, 1.0), "tea": (None, 1.0),
    }  # fmt: skip
    assert {c.item_id: (c.available, c.price) for c in every_candidate(priced, rows, {}, limits)} == {
        "milk": (True, 0.99), "tea": (False, 1.0),  # not carried by the store
    }  # fmt: skip


def pack_of(shelf: StoreShelf, packed_at: datetime, version: int | None = None, stale: bool = False) -> ShelfPack:
    """The pack the database would hold for `shelf` (network byte order, aisles in name order)."""

    def packed(numbers) -> bytes:
        copy = type(numbers)(numbers.typecode, numbers)
        if sys.byteorder == "little":
            copy.byteswap()
        return copy.tobytes()

    aisles = sorted(shelf.aisles.items())
    aisle_items = type(shelf.popular_items)("i", [p for _, items in aisles for p in items])
    aisle_sizes = type(shelf.popular_items)("i", [len(items) for _, items in aisles])
    return ShelfPack(
        shelf.store_known, shelf.catalog.version, shelf.catalog.version if version is None else version, packed_at,
        stale, True, None if shelf.available is None else bytes(shelf.available), packed(shelf.prices),
        packed(shelf.popularity), packed(shelf.trending), packed(shelf.trending_items), packed(shelf.popular_items),
        packed(aisle_items), packed(aisle_sizes),
        *(None if counts is None else packed(counts) for counts in (shelf.item_orders, shelf.item_buyers)),
    )  # fmt: skip


def test_a_packed_shelf_unpacks_to_the_shelf_ranked_from_the_stores_rows() -> None:
    shelf = shelf_of(
        item("milk", popularity=5.0, trending=0.5), item("eggs", "Eggs", popularity=9.0),
        item("kefir", popularity=None), item("yogurt", popularity=1.0, available=False),
    )  # fmt: skip
    unpacked = unpack_shelf(shelf.catalog, pack_of(shelf, NOW))

    for name in ("available", "popularity", "trending", "trending_items", "popular_items", "aisles", "store_known"):
        assert getattr(unpacked, name) == getattr(shelf, name), name
    assert unpacked.packed_at == NOW and all(math.isnan(price) for price in unpacked.prices)


@dataclass
class FakeDatabase:
    """What the shelf cache reads, with a log of its reads."""

    clock: list[float]
    version: int = 1
    items: tuple[str, ...] = ("milk", "tea")
    packed_at: datetime | None = NOW
    packed_version: int | None = None  # None: the catalog's
    stale: bool = False
    reads: list[tuple[str, float]] = field(default_factory=list)

    def catalog_rows(self) -> list[CatalogRow]:
        return [item(item_id)["catalog"] for item_id in self.items]

    def reader(self, store_id: str) -> ShelfReader:
        def catalog() -> tuple[int, list[CatalogRow]]:
            self.reads.append(("catalog", self.clock[0]))
            return self.version, self.catalog_rows()

        def store_rows() -> StoreRows:
            self.reads.append((f"rows {store_id}", self.clock[0]))
            return StoreRows(True, [(item_id, True, None) for item_id in self.items], [])

        def pack(have: datetime | None, have_reorders: datetime | None) -> ShelfPack:
            self.reads.append((f"pack {store_id}", self.clock[0]))
            if self.packed_at is None:
                return ShelfPack(True, self.version, None, None, None, None, *[None] * 10)
            version = self.version if self.packed_version is None else self.packed_version
            shelf = stock_shelf(stock_catalog(version, self.catalog_rows()), store_rows())
            self.reads.pop()  # not a read of the store's rows: how the fake makes a pack
            full = pack_of(shelf, self.packed_at, version, self.stale)
            if have == self.packed_at:
                return ShelfPack(*astuple(full)[:5], False, *[None] * 10)
            return full

        return ShelfReader(catalog, pack, store_rows, lambda: [])


def test_the_cache_keeps_a_shelf_for_its_ttl_then_checks_its_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    database, cache = FakeDatabase(clock), ShelfCache()

    first = cache.shelf("store-a", (), 30, 10, database.reader("store-a"))
    clock[0] += 29
    assert cache.shelf("store-a", (), 30, 10, database.reader("store-a")) is first
    clock[0] += 1
    assert cache.shelf("store-a", (), 30, 10, database.reader("store-a")) is first  # checked: the same pack
    database.packed_at += timedelta(minutes=5)  # packed again (a recompute)
    clock[0] += 30
    repacked = cache.shelf("store-a", (), 30, 10, database.reader("store-a"))
    assert repacked is not first and repacked.packed_at == database.packed_at
    database.version, database.items = 2, ("milk", "oat-milk", "tea")  # the catalog changed, and its packs
    database.packed_at += timedelta(minutes=1)
    clock[0] += 30
    over_new_catalog = cache.shelf("store-a", (), 30, 10, database.reader("store-a"))
    assert ids(over_new_catalog, over_new_catalog.popular_items) == []
    assert over_new_catalog.catalog.positions["tea"] == 2
    assert database.reads == [("pack store-a", 100), ("catalog", 100), ("pack store-a", 130), ("pack store-a", 160),
                              ("pack store-a", 190), ("catalog", 190)]  # fmt: skip
    cache.shelf("store-a", (), 0, 10, database.reader("store-a"))
    cache.shelf("store-a", (), 0, 10, database.reader("store-a"))
    assert len(database.reads) == 8  # a TTL of 0 checks the pack every time


@pytest.mark.parametrize(
    "change",
    [{"packed_at": None}, {"stale": True}, {"packed_version": 0}],
    ids=["no pack", "stale pack", "packed over another catalog"],
)
def test_a_store_without_a_current_pack_is_ranked_from_its_rows(monkeypatch: pytest.MonkeyPatch, change: dict) -> None:
    clock = [100.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    database, cache = FakeDatabase(clock, **change), ShelfCache()

    shelf = cache.shelf("store-a", (), 30, 10, database.reader("store-a"))

    assert shelf.packed_at is None and shelf.available == bytearray([1, 1])
    assert [name for name, _ in database.reads] == ["pack store-a", "catalog", "rows store-a"]


def test_the_cache_keeps_the_most_recently_used_shelves(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    database, cache = FakeDatabase(clock), ShelfCache()
    for store_id in ("store-a", "store-b", "store-a", "store-c"):  # at most two: store-b is the oldest used
        cache.shelf(store_id, (), 30, 2, database.reader(store_id))
    database.reads.clear()

    cache.shelf("store-a", (), 30, 2, database.reader("store-a"))
    cache.shelf("store-c", (), 30, 2, database.reader("store-c"))
    cache.shelf("store-b", (), 30, 2, database.reader("store-b"))

    assert database.reads == [("pack store-b", 100)]


def test_a_failed_read_drops_the_stale_shelf(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    database, cache = FakeDatabase(clock), ShelfCache()
    cache.shelf("store-a", (), 30, 10, database.reader("store-a"))
    clock[0] = 31

    def failing(have: datetime | None, have_reorders: datetime | None) -> ShelfPack:
        raise RuntimeError("database down")

    reader = ShelfReader(database.reader("store-a").catalog, failing, database.reader("store-a").store_rows, list)
    with pytest.raises(RuntimeError):
        cache.shelf("store-a", (), 30, 10, reader)
    with pytest.raises(RuntimeError):  # not served from the expired shelf either
        cache.shelf("store-a", (), 30, 10, reader)


def test_sources_propose_from_the_shelf_and_the_users_rows() -> None:
    shelf = shelf_of(
        item("milk", popularity=5.0, trending=1.0), item("eggs", "Eggs", popularity=9.0, trending=3.0),
        item("cream", popularity=7.0, trending=2.0), item("kefir", popularity=1.0, age_days=3),
        item("tea", "Tea", popularity=2.0), models=("m",), model_scores=[("m", "tea", 0.3), ("m", "gone", 0.9)],
    )  # fmt: skip
    rows = user(
        items={"milk": bought(3, 9.0), "cream": bought(1, 5.0), "kefir": bought(2, 7.0, hidden=True),
               "gone": bought(5, 50.0), "eggs": UserItemRow(0, None, None, 0.0, 4.0, False, None)},
        pairs=[("tea", 0.8, "milk")],
        model_scores={"m": {"eggs": 0.7, "milk": 0.1}},
    )  # fmt: skip

    candidates = every_candidate(shelf, rows, {"Tea": 1.0, "Milk": 0.5}, limits(models=("m",), buy_again_pool=3))

    assert proposed(candidates, "buy_again") == ["cream", "milk"]  # the top 3 purchased, not hidden: in the catalog
    assert proposed(candidates, "trending") == ["cream", "eggs"]
    assert proposed(candidates, "popular") == ["cream", "eggs"]
    assert proposed(candidates, "favourite_aisles") == ["tea"]  # the user's top aisle
    assert proposed(candidates, "new_arrivals") == ["kefir"]
    assert proposed(candidates, "model:m") == ["eggs", "milk", "tea"]  # the user's two, then the item-level one
    (tea,) = [c for c in candidates if c.source == "goes_well_with"]
    assert (tea.seed_name, tea.source_score) == ("Milk", 0.8)
    assert tea.model_score == 0.3
    eggs = next(c for c in candidates if c.item_id == "eggs")
    assert (eggs.affinity_raw, eggs.model_score, eggs.popularity_raw, eggs.store_known) == (4.0, 0.7, 9.0, True)
    assert [(c.source, c.item_id) for c in candidates] == sorted((c.source, c.item_id) for c in candidates)


def test_the_buy_again_pool_takes_the_most_bought_items_and_of_tied_ones_the_smaller_ids_in_byte_order() -> None:
    shelf = shelf_of(*(item(item_id) for item_id in ("kefir", "Milk", "cream", "Tea", "eggs")))
    rows = user(items={"kefir": bought(1, 1.0), "Milk": bought(1, 1.0), "cream": bought(1, 1.0),
                       "Tea": bought(1, 1.0), "eggs": bought(3, 2.0)})  # fmt: skip

    candidates = every_candidate(shelf, rows, {}, limits(sources={"buy_again"}, buy_again_pool=3))

    # as the goes-well-with seeds are picked from them in the database: upper case before lower
    assert sorted(proposed(candidates, "buy_again")) == ["Milk", "Tea", "eggs"]


def test_the_stores_own_sources_share_their_candidates_except_for_items_the_user_has_facts_of() -> None:
    shelf = shelf_of(
        item("milk", popularity=5.0, trending=1.0, age_days=3), item("eggs", popularity=9.0, trending=2.0, age_days=5),
        item("kefir", popularity=1.0, age_days=400),
    )  # fmt: skip
    store_sources = limits(sources={"trending", "popular", "new_arrivals"}, pool=3)
    newcomer = user()
    regular = user(items={"eggs": bought(2, 1.0)}, recent={"milk": (None, None, NOW, True)})

    first, again = (
        every_candidate(shelf, newcomer, {}, store_sources),
        every_candidate(shelf, newcomer, {}, store_sources),
    )
    personal = every_candidate(shelf, regular, {}, store_sources)

    assert [(c.source, c.item_id) for c in first] == [
        ("new_arrivals", "eggs"), ("new_arrivals", "milk"),  # kefir: older than new_since
        ("popular", "eggs"), ("popular", "kefir"), ("popular", "milk"), ("trending", "eggs"), ("trending", "milk"),
    ]  # fmt: skip
    assert all(a is b for a, b in zip(first, again, strict=True))  # made once, with the shelf
    assert [(c.item_id, c.purchase_count, c.in_cart) for c in personal if c.source == "popular"] == [
        ("eggs", 2, False), ("kefir", 0, False), ("milk", 0, True),
    ]  # fmt: skip
    assert [c is s for c, s in zip(personal, first, strict=True)] == [False, False, False, True, False, False, False]
    assert [astuple(c) for c in first] == [
        astuple(c) for c in every_candidate(replace(shelf), newcomer, {}, store_sources)
    ]


def test_the_users_aisle_affinities_are_their_items_affinities_summed_per_aisle_of_the_catalog() -> None:
    shelf = shelf_of(item("milk"), item("cream"), item("kefir"), item("tea", "Tea"), item("eggs", "Eggs"),
                     item("bread", "Bread"))  # fmt: skip

    def row(affinity: float, hidden: bool = False) -> UserItemRow:
        return UserItemRow(0, None, None, 0.0, affinity, hidden, None)

    rows = user(items={
        "tea": row(0.25), "milk": row(1.5), "kefir": row(0.125, hidden=True),  # a hidden item's past events count
        "cream": row(2.0), "eggs": row(0.0),  # only a hide: no affinity, no aisle
        "gone": row(8.0),  # not in the catalog
    })  # fmt: skip

    aisles = aisle_affinities(shelf, rows)

    assert aisles == {"Milk": 1.5 + 0.125 + 2.0, "Tea": 0.25}
    assert aisle_affinities(shelf, user()) == {}


def test_the_users_aisle_affinities_are_the_same_whatever_the_order_of_their_item_rows() -> None:
    """Added one by one, 0.1 + 0.2 + 0.3 is 0.6000000000000001 in some orders and 0.6 in others: the order the
    database gave the rows in would decide whether Tea (three items) beats Milk (one of 0.6) or ties with it."""
    shelf = shelf_of(item("green", "Tea"), item("black", "Tea"), item("mint", "Tea"), item("milk", "Milk"))

    def row(affinity: float) -> UserItemRow:
        return UserItemRow(0, None, None, 0.0, affinity, False, None)

    items = {"green": row(0.1), "black": row(0.2), "mint": row(0.3), "milk": row(0.6)}
    each_order = [aisle_affinities(shelf, user(items=dict(order))) for order in permutations(items.items())]

    in_item_id_order = {"Tea": 0.2 + 0.1 + 0.3, "Milk": 0.6}  # black, green, mint
    assert each_order == [in_item_id_order] * len(each_order)
    assert in_item_id_order["Tea"] > 0.6
    favourite = gather_candidates(shelf, user(items=items), each_order[0], limits({"favourite_aisles"}))
    assert {c.aisle for group in favourite for c in group.candidates} == {"Tea"}


def test_favourite_aisles_of_equal_affinity_are_taken_by_name_in_code_point_order() -> None:
    names = ["Épicerie", "fresh", "Frozen", "Fruits", "Tea"]  # in en_US.UTF-8's order (case and accents come last)
    shelf = shelf_of(*(item(f"item-{n}", name) for n, name in enumerate(names)))
    aisles = dict.fromkeys(names, 1.0) | {"Tea": 2.0}

    def favourite(top: int) -> set[str]:
        candidates = every_candidate(shelf, user(), aisles, limits({"favourite_aisles"}, favourite_aisles=top))
        return {c.aisle for c in candidates}

    # The best liked first, then by code point, whatever the mapping's order: capitals before small letters, é last.
    assert favourite(3) == {"Tea", "Frozen", "Fruits"}
    assert favourite(4) == {"Tea", "Frozen", "Fruits", "fresh"}


def test_ranking_pages_with_debug_leaves_the_shelfs_shared_candidates_as_they_were() -> None:
    shelf = shelf_of(
        item("milk", popularity=5.0, trending=1.0, age_days=3), item("eggs", popularity=9.0, trending=2.0, age_days=5),
        item("kefir", popularity=1.0, age_days=400), item("wine", popularity=3.0, trending=0.5),
    )  # fmt: skip
    feed = default_ranking_config().base
    context = RankingContext(
        now=NOW, buy_again=BuyAgainParams(), filters=feed.filters, just_purchased=timedelta(days=1),
        just_purchased_max_due=0.5, just_purchased_min_rebuy_rate=0.5, excluded_tags=frozenset({"wine"}),
        aisle_affinities={"Milk": 1.0}, explain=True,
    )  # fmt: skip
    newcomer = user()
    regular = user(items={"eggs": bought(2, 1.0, hidden=True)}, recent={"milk": (NOW, None, NOW, True)})
    shared = every_candidate(shelf, newcomer, {}, limits(pool=4))
    before = [astuple(c) for c in shared]

    for person in (newcomer, regular, newcomer):
        select_sections(gather_candidates(shelf, person, {}, limits(pool=4)), feed.sections, context)

    again = every_candidate(shelf, newcomer, {}, limits(pool=4))
    assert all(a is b for a, b in zip(again, shared, strict=True))
    assert [astuple(c) for c in again] == before


def test_sources_not_shown_propose_nothing() -> None:
    shelf = shelf_of(item("milk", trending=1.0), item("kefir", age_days=1))

    candidates = every_candidate(shelf, user(items={"milk": bought(2, 1.0)}), {}, limits(sources={"popular"}))

    assert {c.source for c in candidates} == {"popular"}


def with_reorders(shelf: StoreShelf, counts: dict[str, tuple[int, int]]) -> StoreShelf:
    """The shelf with the reorder counts of a pack: (orders, buyers) per item, 0 for the others."""
    rows = shelf.catalog.rows
    return replace(
        shelf, item_orders=array("q", [counts.get(row[0], (0, 0))[0] for row in rows]),
        item_buyers=array("q", [counts.get(row[0], (0, 0))[1] for row in rows]),
    )  # fmt: skip


def test_a_packed_shelf_unpacks_its_reorder_counts() -> None:
    shelf = with_reorders(shelf_of(item("milk"), item("tea")), {"milk": (12, 5)})
    unpacked = unpack_shelf(shelf.catalog, pack_of(shelf, NOW))
    without = unpack_shelf(shelf.catalog, pack_of(shelf_of(item("milk"), item("tea")), NOW))

    assert (list(unpacked.item_orders), list(unpacked.item_buyers)) == ([12, 0], [5, 0])
    assert (without.item_orders, without.item_buyers) == (None, None)


def test_the_reorder_counts_are_read_and_kept_once_for_every_shelf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shelves, "monotonic", lambda: 100.0)
    shelf = with_reorders(shelf_of(item("milk"), item("tea")), {"milk": (12, 5)})
    counted_at, asked = NOW - timedelta(hours=1), []

    def pack(have: datetime | None, have_reorders: datetime | None) -> ShelfPack:
        asked.append(have_reorders)
        full = replace(pack_of(shelf, NOW), reorders_packed_at=counted_at)
        return replace(full, item_orders=None, item_buyers=None) if have_reorders == counted_at else full

    def store_rows() -> StoreRows:
        raise AssertionError("every store has its pack")

    reader = ShelfReader(lambda: (shelf.catalog.version, shelf.catalog.rows), pack, store_rows, list)
    cache = ShelfCache()

    first, second = cache.shelf("store-a", (), 30, 10, reader), cache.shelf("store-b", (), 30, 10, reader)

    assert asked == [None, counted_at]  # the second store's pack comes without the counts held
    assert second.item_orders is first.item_orders and second.item_buyers is first.item_buyers
    assert (list(second.item_orders), list(second.item_buyers)) == ([12, 0], [5, 0])

    # A later run packs newer counts: the next store's pack brings them, and they are held for the stores after.
    shelf, counted_at = with_reorders(shelf, {"milk": (13, 6), "tea": (2, 1)}), NOW
    third, fourth = cache.shelf("store-c", (), 30, 10, reader), cache.shelf("store-d", (), 30, 10, reader)

    assert asked == [None, NOW - timedelta(hours=1), NOW - timedelta(hours=1), NOW]
    assert (list(third.item_orders), list(third.item_buyers)) == ([13, 2], [6, 1])
    assert fourth.item_orders is third.item_orders and fourth.item_buyers is third.item_buyers


def test_bought_items_take_their_reorder_counts_from_the_shelf_at_least_the_users_own() -> None:
    # The pack is older than the user's rows: the user is kefir's first buyer since it was made, and bought milk
    # twice more than it counts.
    shelf = with_reorders(
        shelf_of(item("milk"), item("tea"), item("kefir"), item("eggs")), {"milk": (1, 1), "tea": (12, 5)}
    )
    rows = user(items={"milk": bought(3, 1.0), "tea": bought(2, 2.0), "kefir": bought(2, 3.0),
                       "eggs": UserItemRow(0, None, None, 0.0, 4.0, False, None)})  # fmt: skip
    rows.reorders = {"milk": (99, 9)}  # read with the user's rows: unused when the shelf has counts

    candidates = every_candidate(shelf, rows, {}, limits(sources={"buy_again", "popular"}, pool=4, buy_again_pool=4))

    counts = {(c.source, c.item_id): (c.item_orders, c.item_buyers) for c in candidates}
    assert {item_id: counts["buy_again", item_id] for item_id in ("milk", "tea", "kefir")} == {
        "milk": (3, 1), "tea": (12, 5), "kefir": (2, 1),  # kefir as item_reorders has it: the user its only buyer
    }  # fmt: skip
    assert counts["popular", "eggs"] == (0, 0)  # never bought by the user: no counts, as the user's rows have it


def test_without_counts_on_the_shelf_bought_items_take_those_read_with_the_users_rows() -> None:
    shelf = shelf_of(item("milk"), item("tea"))
    rows = user(items={"milk": bought(3, 1.0), "tea": bought(2, 2.0)})
    rows.reorders = {"milk": (30, 7), "tea": (2, 1)}

    candidates = every_candidate(shelf, rows, {}, limits(sources={"buy_again"}))

    assert {c.item_id: (c.item_orders, c.item_buyers) for c in candidates} == {"milk": (30, 7), "tea": (2, 1)}


def test_no_config_reads_further_into_a_ranked_list_than_a_packed_shelf_keeps() -> None:
    """A packed shelf keeps each ranked list's first MAX_POOL items (migration 0098): the largest section a config
    allows, times the most candidates per slot, and the recompute's trending refresh read no further."""
    base = default_ranking_config().base
    widest = base.model_copy(
        update={
            "sections": [base.sections[0].model_copy(update={"size": MAX_SECTION_SIZE})],
            "section_order": None,
            "candidates_per_slot": MAX_CANDIDATES_PER_SLOT,
        }
    )
    widest_limits = _source_limits(FeedConfig.model_validate(widest.model_dump()), FeedSettings(), datetime.now(UTC))
    assert widest_limits.pool == MAX_POOL  # the pool the sources are given, as the feed computes it
    for too_wide in ({"candidates_per_slot": MAX_CANDIDATES_PER_SLOT + 1},
                     {"sections": [{**base.sections[0].model_dump(), "size": MAX_SECTION_SIZE + 1}]}):  # fmt: skip
        with pytest.raises(ValidationError):
            FeedConfig.model_validate({**widest.model_dump(), **too_wide})
    assert TRENDING_KEPT_FRESH <= MAX_POOL


def context_of(filters=ALL_FILTERS, excluded_tags=frozenset()) -> RankingContext:
    return RankingContext(
        now=NOW, buy_again=BuyAgainParams(), filters=filters, just_purchased=timedelta(days=1),
        just_purchased_max_due=0.5, just_purchased_min_rebuy_rate=0.5, excluded_tags=frozenset(excluded_tags),
    )  # fmt: skip


def screened_shelf() -> StoreShelf:
    wine = item("wine", popularity=6.0, trending=3.0, age_days=2)
    wine["catalog"] = (*wine["catalog"][:5], ["alcohol"], *wine["catalog"][6:])
    return shelf_of(
        item("milk", popularity=5.0, trending=1.0, age_days=3), item("eggs", popularity=9.0, trending=2.0),
        item("kefir", popularity=4.0, trending=1.5, available=False),
        item("cream", popularity=3.0, active=False, available=False),
        item("tea", popularity=2.0, trending=0.5, available=False), wine,
    )  # fmt: skip


def test_the_store_level_filters_screen_a_shelfs_own_candidates_once_per_config_and_exclusions() -> None:
    shelf, sources = screened_shelf(), limits(sources={"trending", "popular", "new_arrivals"}, pool=6)
    plain, without_wine = context_of(), context_of(excluded_tags={"alcohol"})

    first = filter_sources(gather_candidates(shelf, user(), {}, sources), plain)
    again = filter_sources(gather_candidates(shelf, user(), {}, sources), plain)
    other = filter_sources(gather_candidates(shelf, user(), {}, sources), without_wine)

    assert {source: [c.item_id for c in kept] for source, kept in first[0].items()} == {
        "new_arrivals": ["milk", "wine"], "popular": ["eggs", "milk", "wine"], "trending": ["eggs", "milk", "wine"],
    }  # fmt: skip
    assert [(r.source, r.item_id, r.filter) for r in first[1]] == [
        ("popular", "cream", "inactive"), ("popular", "kefir", "unavailable"), ("popular", "tea", "unavailable"),
        ("trending", "kefir", "unavailable"), ("trending", "tea", "unavailable"),
    ]  # fmt: skip
    assert all(again[0][source] is kept for source, kept in first[0].items())  # screened once, kept with the shelf
    assert [(r.item_id, r.filter) for r in other[1] if r.source == "trending"] == [
        ("kefir", "unavailable"), ("tea", "unavailable"), ("wine", "excluded_tags"),
    ]  # fmt: skip
    # another ranking config's filters (in another order, or fewer) are another screening
    reordered = filter_sources(gather_candidates(shelf, user(), {}, sources), context_of(("excluded_tags", "inactive")))
    assert [(r.item_id, r.filter) for r in reordered[1]] == [("cream", "inactive")]
    popular = store_candidates(shelf, "popular", 6, NOW)  # the kept list
    assert len(popular.screenings) == 3
    for n in range(2 * SCREENINGS_KEPT):  # exclusions come from requests: a bounded number is kept
        filter_sources(gather_candidates(shelf, user(), {}, sources), context_of(excluded_tags={f"tag-{n}"}))
    assert len(popular.screenings) == SCREENINGS_KEPT


@pytest.mark.parametrize(
    "filters", [ALL_FILTERS, ("hidden", "in_cart", "just_purchased", "unavailable", "inactive", "excluded_tags")]
)
@pytest.mark.parametrize("excluded", [frozenset(), frozenset({"alcohol"})])
def test_screened_candidates_filter_as_every_filter_over_every_candidate_would(filters, excluded) -> None:
    shelf, sources = screened_shelf(), limits(pool=6, buy_again_pool=6)
    context = context_of(filters, excluded)
    people = [
        user(),
        # kefir (unavailable) hidden, tea (unavailable) and eggs in the cart, milk bought lately, wine bought long ago
        user(items={"kefir": bought(2, 1.0, hidden=True), "milk": bought(3, 2.0), "wine": bought(1, 1.0)},
             recent={"tea": (None, None, NOW, True), "eggs": (None, None, NOW, True), "milk": (NOW, None, NOW, False)}),
    ]  # fmt: skip
    for person in people * 2:  # the second time from the shelf's screenings
        gathered = gather_candidates(shelf, person, {"Milk": 1.0}, sources)
        every = [c for source in gathered for c in source.candidates]
        kept, removed = apply_filters(every, context)

        kept_by_source, screened_removed, _ = filter_sources(gathered, context)

        assert [c for source in kept_by_source.values() for c in source] == kept
        assert [astuple(r) for r in screened_removed] == [astuple(r) for r in removed]
    # the hidden kefir is unavailable too: which removes it is the config's first
    kefir = {r.filter for r in removed if r.item_id == "kefir"}
    assert kefir == ({"hidden"} if filters[0] == "hidden" else {"unavailable"})
    # so is the inactive cream, a candidate of the shelf's own (screened): the config's first of the two removes it
    cream = {r.filter for r in removed if r.item_id == "cream"}
    assert cream == ({"inactive"} if filters.index("inactive") < filters.index("unavailable") else {"unavailable"})
    assert {r.filter for r in removed} >= {"in_cart"}


@pytest.mark.parametrize("explain", [False, True])
def test_a_store_level_section_of_candidate_signals_is_ranked_once_per_screening_as_rank_ranks_it(explain) -> None:
    shelf, sources = screened_shelf(), limits(sources={"trending", "popular", "new_arrivals"}, pool=6)
    store_level = {"trending", "popular", "new_arrivals"}
    specs = [spec for spec in default_ranking_config().base.ordered_sections if spec.source in store_level]
    assert {spec.id: set(spec.weights) <= CANDIDATE_SIGNALS for spec in specs} == {
        "trending": True, "popular": True, "new_arrivals": False,  # newness reads the clock
    }  # fmt: skip
    # each section alone (no item shown earlier), with no cap: the whole ranking is taken
    uncapped = [spec.model_copy(update={"size": 6, "max_per_aisle": None, "max_per_brand": None}) for spec in specs]

    def sections(now: datetime, person: UserRows) -> dict[str, list[Ranked]]:
        context = replace(context_of(), now=now, explain=explain)
        return {
            spec.id: select_sections(gather_candidates(shelf, person, {}, sources), [spec], context)[0][0].items
            for spec in uncapped
        }

    first, later = sections(NOW, user()), sections(NOW + timedelta(hours=1), user())
    context = replace(context_of(), explain=explain)
    kept = filter_sources(gather_candidates(shelf, user(), {}, sources), context)[0]
    for spec in uncapped:
        expected = [astuple(r) for r in rank(kept[spec.source], spec.weights, context)]
        assert [astuple(r) for r in first[spec.id]] == expected
        assert bool(first[spec.id][0].contributions) is explain
    # trending and popular: the same objects for every request at the shelf; new arrivals ranked per request
    assert all(a is b for a, b in zip(first["trending"], later["trending"], strict=True))
    assert all(a is b for a, b in zip(first["popular"], later["popular"], strict=True))
    assert first["new_arrivals"][0] is not later["new_arrivals"][0]
    # a user with facts of a trending item: that source's candidates are made again, and ranked for the request
    own = sections(NOW, user(items={"eggs": bought(1, 1.0)}))
    assert own["trending"][0] is not first["trending"][0]
    assert [astuple(r)[1:] for r in own["trending"]] == [astuple(r)[1:] for r in first["trending"]]
    assert [r.candidate.item_id for r in own["trending"]] == [r.candidate.item_id for r in first["trending"]]


def test_one_shelfs_kept_rankings_follow_the_sections_weights_and_explanations() -> None:
    shelf, sources = screened_shelf(), limits(sources={"trending"}, pool=6)
    weightings = [{"trending": 1.0}, {"popularity": 1.0}, {"trending": 1.0, "popularity": 2.0},
                  {"trending": 1.0, "popularity": -0.0}]  # fmt: skip
    # -0.0 is read as 0.0: a weight the key cannot tell from 0.0 must not show as -0.0 in an explanation
    configs = [SectionConfig(id="t", title="T", source="trending", weights=weights) for weights in weightings]
    assert [dict(config.weights) for config in configs][-1] == {"trending": 1.0, "popularity": 0.0}
    assert math.copysign(1.0, configs[-1].weights["popularity"]) == 1.0
    for _ in range(2):  # the second time from the kept rankings, on the same shelf
        for config in configs:
            spec = config.model_copy(update={"size": 6})
            for explain in (True, False, True):
                context = replace(context_of(), explain=explain)
                chosen = select_sections(gather_candidates(shelf, user(), {}, sources), [spec], context)[0][0].items
                kept = filter_sources(gather_candidates(shelf, user(), {}, sources), context)[0]["trending"]
                assert [astuple(r) for r in chosen] == [astuple(r) for r in rank(kept, spec.weights, context)]


def test_a_repacked_shelf_screens_its_candidates_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(shelves, "monotonic", lambda: clock[0])
    packs = [pack_of(screened_shelf(), NOW)]
    reader = ShelfReader(lambda: (1, screened_shelf().catalog.rows), lambda have, _: packs[-1], list, list)
    cache, sources, context = ShelfCache(), limits(sources={"popular"}, pool=6), context_of()

    def popular_removed() -> list[str]:
        shelf = cache.shelf("store-a", (), 30, 10, reader)
        return [r.item_id for r in filter_sources(gather_candidates(shelf, user(), {}, sources), context)[1]]

    assert popular_removed() == ["cream", "kefir", "tea"]
    restocked = replace(screened_shelf(), available=bytes(6))  # now sells nothing
    packs.append(pack_of(restocked, NOW + timedelta(minutes=5)))
    assert popular_removed() == ["cream", "kefir", "tea"]  # within the shelf's TTL
    clock[0] += 31
    assert popular_removed() == ["cream", "eggs", "kefir", "milk", "tea", "wine"]


def test_new_arrivals_are_those_arrived_since_new_since_and_a_shelf_keeps_few_lists() -> None:
    shelf = shelf_of(*(item(f"item-{n:02}", age_days=n) for n in range(40)))

    def arrivals(days: int, pool: int = 30) -> list[str]:
        since = replace(limits(sources={"new_arrivals"}, pool=pool), new_since=NOW - timedelta(days=days, hours=1))
        return [c.item_id for c in every_candidate(shelf, user(), {}, since)]

    assert arrivals(2) == ["item-00", "item-01", "item-02"]
    assert arrivals(25, pool=4) == ["item-00", "item-01", "item-02", "item-03"]  # the newest `pool`
    assert arrivals(0) == ["item-00"]
    for days in range(2 * STORE_CANDIDATES_KEPT):
        assert arrivals(days) == [f"item-{n:02}" for n in range(min(days + 1, 30))]
    assert len(shelf.candidates) == STORE_CANDIDATES_KEPT


def test_a_kept_value_is_dropped_least_recently_used_first() -> None:
    kept = RecentlyUsed[str, str](2)
    for key in ("a", "b", "a", "c"):  # "a" used again after "b": "b" goes when "c" comes
        kept.get(key, key.upper)
    assert kept.get("a", lambda: "made again") == "A"
    assert kept.get("b", lambda: "made again") == "made again"
    assert len(kept) == 2


def test_kept_values_are_safe_for_the_threads_of_the_local_server() -> None:
    """Eviction by many threads at once (a KeyError or a RuntimeError without the lock, which would be a 500)."""
    kept = RecentlyUsed[int, int](2)

    def use(offset: int) -> None:
        for n in range(20_000):
            key = (n + offset) % 7
            assert kept.get(key, lambda key=key: 10 * key) == 10 * key  # each key's own value, kept or made

    assert errors_in_threads(use) == []
    assert len(kept) == 2


def errors_in_threads(work: Callable[[int], None], threads: int = 8) -> list[Exception]:
    """The errors of `work(offset)` run in `threads` threads at once, switching as often as the interpreter can."""
    errors: list[Exception] = []

    def run(offset: int) -> None:
        try:
            work(offset)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        started = [threading.Thread(target=run, args=(offset,)) for offset in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
    finally:
        sys.setswitchinterval(switch_interval)
    return errors


def test_the_degraded_modes_popular_lists_are_kept_safely_by_the_threads_of_the_local_server() -> None:
    """Threads keeping lists while the shelves of others are dropped (a RuntimeError, "dictionary changed size
    during iteration", or a KeyError without a copy of the items and pop: a 500)."""
    held = [shelf_of(item(f"item-{n}")) for n in range(4)]

    def keep(offset: int) -> None:
        for n in range(2000):
            shelf = held[n % 4] if n % 3 else shelf_of(item("gone"))  # dropped as soon as kept
            service._keep_popular(f"store-{(n + offset) % 9}", shelf, [])

    try:
        assert errors_in_threads(keep) == []
    finally:
        service._cached_popular.clear()
