"""Candidate sources and hydration: the store's shelf (cached) and the user's own rows (read per request)
make the hydrated candidates of every source the feed shows. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice, takewhile

from feedcore.db.feed import Candidate, ShelfRow, UserItemRow, UserRows
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
    (an item in both comes twice, as the read query did)."""
    proposals: list[tuple[str, ShelfRow, float | None, str | None]] = []  # (source, row, score, seed item)
    items, sources, pool = shelf.items, limits.sources, limits.pool

    def propose(source: str, item_id: str, score: float | None, seed: str | None = None) -> None:
        row = items.get(item_id)
        if row is not None:
            proposals.append((source, row, score, seed))

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
        proposals += [("trending", row, row[11], None) for row in shelf.trending[:pool]]
    if "popular" in sources:
        proposals += [("popular", row, row[10], None) for row in shelf.popular[:pool]]
    if "favourite_aisles" in sources:
        top_aisles = sorted(user.aisles, key=user.aisles.__getitem__, reverse=True)[: limits.favourite_aisles]
        for aisle in top_aisles:
            proposals += [("favourite_aisles", row, row[10], None) for row in shelf.aisles.get(aisle, ())[:pool]]
    if "new_arrivals" in sources:
        fresh = takewhile(lambda row: row[7] >= limits.new_since, shelf.new_arrivals)
        proposals += [("new_arrivals", row, None, None) for row in islice(fresh, pool)]
    for model in limits.models:
        source = f"model:{model}"
        own = sorted(user.model_scores.get(model, {}).items(), key=lambda entry: entry[1], reverse=True)
        for item_id, score in own[:pool]:
            propose(source, item_id, score)
        proposals += [(source, row, score, None) for row, score in shelf.item_models.get(model, ())[:pool]]

    proposals.sort(key=lambda proposal: (proposal[0], proposal[1][0]))
    return [_hydrate(shelf, user, limits.models, *proposal) for proposal in proposals]


def _hydrate(
    shelf: StoreShelf, user: UserRows, models: tuple[str, ...], source: str, row: ShelfRow, score: float | None,
    seed: str | None,
) -> Candidate:  # fmt: skip
    item_id = row[0]
    seed_row = shelf.items.get(seed) if seed is not None else None
    history = user.items.get(item_id, _NO_HISTORY)
    model_scores = [
        score
        for model in models
        for score in (user.model_scores.get(model, {}).get(item_id), shelf.item_model_scores[model].get(item_id))
        if score is not None
    ]
    return Candidate(
        source, score, seed, seed_row[1] if seed_row else None, *row[:10],
        history.purchase_count, history.first_purchased_at, history.last_purchased_at, history.purchase_raw,
        history.affinity_raw, history.hidden, history.last_hidden_at,
        row[10] or 0.0, row[11] or 0.0, user.aisles.get(row[4], 0.0), max(model_scores, default=None),
        *user.recent.get(item_id, _NO_RECENT_EVENTS), shelf.epoch, shelf.store_known,
    )  # fmt: skip
