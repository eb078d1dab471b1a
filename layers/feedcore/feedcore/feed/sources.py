"""Candidate sources and hydration: the store's shelf (cached) and the user's own rows (read per request)
make the hydrated candidates of every source the feed shows. Pure functions, but for the store-level sources'
candidates, made once per shelf and kept with it (store_candidates)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from datetime import datetime
from operator import itemgetter

from msgspec import Struct

from feedcore.db.feed import Candidate, UserItemRow, UserRows
from feedcore.feed.pipeline import SourceCandidates, StoreCandidates
from feedcore.feed.shelves import CATALOG_AISLE, CATALOG_CREATED_AT, StoreShelf

_NO_REORDERS = (0, 0)
_NO_HISTORY = (*UserItemRow(0, None, None, 0.0, 0.0, False, None), *_NO_REORDERS)
_NO_RECENT_EVENTS = (None, None, None, False)
_AFFINITY_RAW = UserItemRow._fields.index("affinity_raw")  # in a row of user.items


class SourceLimits(Struct, frozen=True):
    """Which sources are read and how many candidates each gives."""

    sources: frozenset[str]  # source names; model sections as "model"
    models: tuple[str, ...]
    pool: int  # per source (per aisle for favourite_aisles, per list for a model)
    buy_again_pool: int
    favourite_aisles: int
    new_since: datetime


def aisle_affinities(shelf: StoreShelf, user: UserRows) -> dict[str, float]:
    """The user's affinity to each aisle: the sum of their items' affinity_raw (their events of positive weight,
    decayed alike; hidden items included) over the items the shelf's catalog has in the aisle — the sum the
    recompute stored per user and aisle before migration 0096. Aisles where no item has any are left out; the order
    means nothing (gather_candidates breaks favourite aisles' ties itself).

    The items are added in item id order (code point order), whatever order their rows came in: floats added in
    another order can differ in the last bit, and two aisles of equal affinity then rank either way. (Sorted, the
    rows cost ~32K instructions a page, ~69K summed by math.fsum: they mostly come in the primary key's order.)"""
    positions, rows, sums = shelf.catalog.positions, shelf.catalog.rows, {}
    for item_id, row in sorted(user.items.items()):
        affinity = row[_AFFINITY_RAW]
        if affinity > 0 and (position := positions.get(item_id)) is not None:
            aisle = rows[position][CATALOG_AISLE]
            sums[aisle] = sums.get(aisle, 0.0) + affinity
    return sums


def gather_candidates(
    shelf: StoreShelf, user: UserRows, aisles: Mapping[str, float], limits: SourceLimits
) -> list[SourceCandidates]:
    """The hydrated candidates of each source that proposes any, by source name (in code-point order), one per
    (source, item) proposal in catalog order (item_id order: positions follow it); favourite aisles are the top
    of the user's `aisles` (aisle_affinities), aisles of equal affinity by name in code-point order (Python's, as
    the C collation orders them), whatever the mapping's order and the database's collation. (Code from before
    migration 0096 took them in the order the database gave its aisle rows: its collation's, under RDS's default
    en_US.UTF-8 not always this one, e.g. "fresh" before "Frozen"; so while a deploy runs both, the two may pick
    different aisles among equally liked ones.)

    Items the catalog does not have are left out; a model's user-level and item-level lists both propose
    (an item in both comes twice). The candidates of the sources that are the same for every user at a store
    (trending, popular, new arrivals) are the shelf's own (see store_candidates), made again for this user only
    for an item with their history or recent events, or when a model scores."""
    # per source: (catalog position, score, seed item)
    proposals: dict[str, list[tuple[int, float | None, str | None]]] = {}
    positions, sources, pool = shelf.catalog.positions, limits.sources, limits.pool

    if "buy_again" in sources:
        # The pool the goes-well-with seeds are taken from (feed_user_item_rows' purchased, migration 0099): the
        # most purchase_raw first, ties to the smaller item id (str order is code point order: UTF-8 byte order).
        purchased = [
            (-row.purchase_raw, item_id)
            for item_id, row in user.items.items()
            if row.purchase_count > 0 and not row.hidden
        ]
        proposals["buy_again"] = [
            (position, None, None)
            for _, item_id in sorted(purchased)[: limits.buy_again_pool]
            if (position := positions.get(item_id)) is not None
        ]
    proposals["goes_well_with"] = [  # user.pairs: read only when goes_well_with is shown
        (position, score, seed)
        for item_id, score, seed in user.pairs
        if (position := positions.get(item_id)) is not None
    ]
    if "favourite_aisles" in sources:
        by_name = sorted(aisles)  # ties keep it: the sort by affinity is stable (also with reverse)
        top_aisles = sorted(by_name, key=aisles.__getitem__, reverse=True)[: limits.favourite_aisles]
        proposals["favourite_aisles"] = [
            (p, shelf.popularity[p], None) for aisle in top_aisles for p in shelf.aisles.get(aisle, ())[:pool]
        ]
    for model in limits.models:
        own = sorted(user.model_scores.get(model, {}).items(), key=lambda entry: entry[1], reverse=True)
        proposals[f"model:{model}"] = [
            (position, score, None) for item_id, score in own[:pool] if (position := positions.get(item_id)) is not None
        ] + [(p, score, None) for p, score in shelf.item_models[model][:pool]]

    histories, recent = _histories(shelf, user), user.recent
    # The models with any score for this user or store (usually none: no per-candidate work then).
    scored = [
        (user.model_scores.get(model, {}), shelf.item_model_scores[model])
        for model in limits.models
        if user.model_scores.get(model) or shelf.item_model_scores[model]
    ]

    def model_score(item_id: str, position: int) -> float | None:
        of_models = (value for own, item_level in scored for value in (own.get(item_id), item_level.get(position)))
        return max((value for value in of_models if value is not None), default=None)

    rows, gathered = shelf.catalog.rows, {}
    for source, proposed in proposals.items():
        proposed.sort(key=itemgetter(0))  # by catalog position, stable: no Python call per proposal
        candidates = []
        for position, score, seed in proposed:
            item_id, seed_name = rows[position][0], None
            if seed is not None and (seed_position := positions.get(seed)) is not None:
                seed_name = rows[seed_position][1]
            candidates.append(_candidate(
                shelf, source, position, score, seed_name, histories.get(item_id, _NO_HISTORY),
                recent.get(item_id, _NO_RECENT_EVENTS), model_score(item_id, position) if scored else None,
            ))  # fmt: skip
        gathered[source] = SourceCandidates(source, candidates)

    known = histories.keys() | recent.keys()  # the items this user has facts of

    def for_user(source: str, shared: StoreCandidates) -> SourceCandidates:
        """The shelf's candidates, each made again with this user's facts if any."""
        if not scored and shared.item_ids.isdisjoint(known):
            return SourceCandidates(source, shared.candidates, shared)
        candidates = [made_for_user(c) if scored or c.item_id in known else c for c in shared.candidates]
        return SourceCandidates(source, candidates, shared)

    def made_for_user(shared: Candidate) -> Candidate:
        item_id = shared.item_id
        position = positions[item_id]
        return _candidate(
            shelf, shared.source, position, shared.source_score, None, histories.get(item_id, _NO_HISTORY),
            recent.get(item_id, _NO_RECENT_EVENTS), model_score(item_id, position) if scored else None,
        )  # fmt: skip

    for source in STORE_SOURCES & sources:
        gathered[source] = for_user(source, store_candidates(shelf, source, pool, limits.new_since))
    return [gathered[source] for source in sorted(gathered) if gathered[source].candidates]


# The sources the same for every user at a store: their candidates are made once per shelf (store_candidates).
STORE_SOURCES = frozenset({"new_arrivals", "popular", "trending"})


def store_candidates(shelf: StoreShelf, source: str, pool: int, new_since: datetime) -> StoreCandidates:
    """The candidates of trending, popular or new_arrivals at the shelf's store: its first `pool` items (new
    arrivals: the newest, those arrived since `new_since`), made once per shelf and kept with it, shared by the
    requests it serves (never changed; at most STORE_CANDIDATES_KEPT lists, the least recently used dropped)."""
    if source == "trending":
        key, ranked = (source, pool), lambda: [(p, shelf.trending[p]) for p in sorted(shelf.trending_items[:pool])]
    elif source == "popular":
        key, ranked = (source, pool), lambda: [(p, shelf.popularity[p]) for p in sorted(shelf.popular_items[:pool])]
    else:  # new_arrivals
        newest, rows = shelf.catalog.new_arrivals[:pool], shelf.catalog.rows
        # newest first: those arrived since new_since are a prefix
        arrived = bisect_left(newest, True, key=lambda position: rows[position][CATALOG_CREATED_AT] < new_since)
        key, ranked = (source, arrived), lambda: [(p, None) for p in sorted(newest[:arrived])]

    def made() -> StoreCandidates:
        candidates = tuple(
            _candidate(shelf, source, p, score, None, _NO_HISTORY, _NO_RECENT_EVENTS, None) for p, score in ranked()
        )
        return StoreCandidates(candidates, frozenset(c.item_id for c in candidates))

    return shelf.candidates.get(key, made)


def _candidate(
    shelf: StoreShelf, source: str, position: int, score: float | None, seed_name: str | None, history: tuple,
    recent_events: tuple, model_score: float | None,
) -> Candidate:  # fmt: skip
    """The candidate of the item at `position` of the shelf's catalog, with the user's `history` of it (Candidate's
    fields from purchase_count to item_buyers) and `recent_events` (from recent_purchase_at to in_cart)."""
    item_id, name, brand, department, aisle, tags, active, created_at, catalog_price = shelf.catalog.rows[position]
    shelf_price, available = shelf.prices[position], shelf.available
    return Candidate(
        source, score, seed_name, item_id, name, brand, department, aisle, tags, active, created_at,
        None if available is None else available[position] == 1,
        catalog_price if shelf_price != shelf_price else shelf_price,  # NaN: no shelf price
        *history, shelf.popularity[position], shelf.trending[position], model_score, *recent_events,
        shelf.store_known,
    )  # fmt: skip


def _histories(shelf: StoreShelf, user: UserRows) -> dict[str, tuple]:
    """Each of the user's items' history followed by the item's orders and buyers over all users (Candidate's
    fields from purchase_count to item_buyers; the counts 0 for an item the user never bought): from the shelf
    when it has them, else as read with the user's rows.

    The shelf's counts are those of its pack (at most one run plus the shelf's TTL behind the user's own rows), so an
    item's first buyers since then would find it with no buyer at all: the counts are taken as at least the
    user's own orders and one buyer, which is exact when the user is the item's only buyer."""
    orders, buyers = shelf.item_orders, shelf.item_buyers
    if orders is None or buyers is None:
        read = user.reorders
        return {item_id: row + read.get(item_id, _NO_REORDERS) for item_id, row in user.items.items()}
    positions, histories = shelf.catalog.positions, {}
    for item_id, row in user.items.items():
        count = row[0]  # purchase_count; max() would cost a call with keyword parsing per item
        if count > 0 and (position := positions.get(item_id)) is not None:
            item_orders, item_buyers = orders[position], buyers[position]
            histories[item_id] = (*row, item_orders if item_orders > count else count, item_buyers or 1)
        else:
            histories[item_id] = row + _NO_REORDERS
    return histories
