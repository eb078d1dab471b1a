"""Candidate sources and hydration: the store's shelf (cached) and the user's own rows (read per request)
make the hydrated candidates of every source the feed shows. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice, takewhile

from feedcore.db.feed import Candidate, UserItemRow, UserRows
from feedcore.feed.shelves import StoreShelf

_NO_HISTORY = UserItemRow(0, None, None, 0.0, 0.0, False, None)
_NO_RECENT_EVENTS = (None, None, None, False)


@dataclass(frozen=True)
class SourceLimits:
    """Which sources are read and how many candidates each gives."""

    sources: frozenset[str]  # source names; model sections as "model"
    models: tuple[str, ...]
    pool: int  # per source (per aisle for favourite_aisles, per list for a model)
    buy_again_pool: int
    favourite_aisles: int
    new_since: datetime


def gather_candidates(shelf: StoreShelf, user: UserRows, limits: SourceLimits) -> list[Candidate]:
    """One hydrated candidate per (source, item) proposal, ordered by source then item.

    Items the catalog does not have are left out; a model's user-level and item-level lists both propose
    (an item in both comes twice)."""
    proposals: list[tuple[str, int, float | None, str | None]] = []  # (source, position, score, seed item)
    positions, rows, sources, pool = shelf.catalog.positions, shelf.catalog.rows, limits.sources, limits.pool

    def propose(source: str, item_id: str, score: float | None, seed: str | None = None) -> None:
        if (position := positions.get(item_id)) is not None:
            proposals.append((source, position, score, seed))

    if "buy_again" in sources:
        purchased = [
            (row.purchase_raw, item_id)
            for item_id, row in user.items.items()
            if row.purchase_count > 0 and not row.hidden
        ]
        for _, item_id in sorted(purchased, reverse=True)[: limits.buy_again_pool]:
            propose("buy_again", item_id, None)
    for item_id, score, seed in user.pairs:  # read only when goes_well_with is shown
        propose("goes_well_with", item_id, score, seed)
    if "trending" in sources:
        proposals += [("trending", p, shelf.trending[p], None) for p in shelf.trending_items[:pool]]
    if "popular" in sources:
        proposals += [("popular", p, shelf.popularity[p], None) for p in shelf.popular_items[:pool]]
    if "favourite_aisles" in sources:
        top_aisles = sorted(user.aisles, key=user.aisles.__getitem__, reverse=True)[: limits.favourite_aisles]
        for aisle in top_aisles:
            ranked = shelf.aisles.get(aisle, ())[:pool]
            proposals += [("favourite_aisles", p, shelf.popularity[p], None) for p in ranked]
    if "new_arrivals" in sources:
        fresh = takewhile(lambda p: rows[p][7] >= limits.new_since, shelf.catalog.new_arrivals)
        proposals += [("new_arrivals", p, None, None) for p in islice(fresh, pool)]
    for model in limits.models:
        source = f"model:{model}"
        own = sorted(user.model_scores.get(model, {}).items(), key=lambda entry: entry[1], reverse=True)
        for item_id, score in own[:pool]:
            propose(source, item_id, score)
        proposals += [(source, p, score, None) for p, score in shelf.item_models[model][:pool]]

    proposals.sort(key=lambda proposal: (proposal[0], rows[proposal[1]][0]))
    return [_hydrate(shelf, user, limits.models, *proposal) for proposal in proposals]


def _hydrate(
    shelf: StoreShelf, user: UserRows, models: tuple[str, ...], source: str, position: int, score: float | None,
    seed: str | None,
) -> Candidate:  # fmt: skip
    item_id, name, brand, department, aisle, tags, active, created_at, catalog_price = shelf.catalog.rows[position]
    shelf_price = shelf.prices[position]
    seed_name = None
    if seed is not None and (seed_position := shelf.catalog.positions.get(seed)) is not None:
        seed_name = shelf.catalog.rows[seed_position][1]
    history = user.items.get(item_id, _NO_HISTORY)
    return Candidate(
        source, score, seed, seed_name, item_id, name, brand, department, aisle, tags, active, created_at,
        None if shelf.available is None else shelf.available[position] == 1,
        catalog_price if shelf_price != shelf_price else shelf_price,  # NaN: no shelf price
        history.purchase_count, history.first_purchased_at, history.last_purchased_at, history.purchase_raw,
        history.affinity_raw, history.hidden, history.last_hidden_at,
        shelf.popularity[position], shelf.trending[position], user.aisles.get(aisle, 0.0),
        _model_score(shelf, user, models, item_id, position) if models else None,
        *user.recent.get(item_id, _NO_RECENT_EVENTS), shelf.store_known,
    )  # fmt: skip


def _model_score(
    shelf: StoreShelf, user: UserRows, models: tuple[str, ...], item_id: str, position: int
) -> float | None:
    """The best score of the item for the user in any of `models`, theirs or item-level."""
    scores = [
        score
        for model in models
        for score in (user.model_scores.get(model, {}).get(item_id), shelf.item_model_scores[model].get(position))
        if score is not None
    ]
    return max(scores, default=None)
