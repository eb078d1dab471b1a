"""Sections of the feed as declarations, and the pure selection of their items."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from feedcore.api.models import FeedItem, FeedSection
from feedcore.db.feed import FeedCandidate
from feedcore.feed.scoring import BuyAgainParams, buy_again_score, decayed


def buy_again_reason(candidate: FeedCandidate) -> str:
    count = candidate.purchase_count or 0
    bought = "You bought this once" if count == 1 else f"You bought this {count} times"
    if candidate.last_purchased_at is None:
        return bought
    return f"{bought}, last on {candidate.last_purchased_at:%b} {candidate.last_purchased_at.day}"


def trending_reason(_: FeedCandidate) -> str:
    return "Popular at your store"


@dataclass(frozen=True)
class RankingContext:
    """What scoring needs besides the candidate: the moment, and the ranking parameters."""

    now: datetime
    buy_again: BuyAgainParams
    buy_again_half_life_days: float


def rank_buy_again(candidate: FeedCandidate, context: RankingContext) -> float:
    score = buy_again_score(candidate, context.now, context.buy_again)
    return decayed(score, candidate.epoch, context.now, context.buy_again_half_life_days)


def rank_trending(candidate: FeedCandidate, _: RankingContext) -> float:
    return candidate.raw_score  # the trending ratio as of the last recompute


@dataclass(frozen=True)
class SectionSpec:
    """A section: which candidate source fills it, its title, how its items rank and are explained."""

    id: str
    title: str
    source: str
    score: Callable[[FeedCandidate, RankingContext], float]
    reason: Callable[[FeedCandidate], str]


# In display order; a section earlier in the list claims an item before a later one can repeat it.
SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(id="buy_again", title="Buy it again", source="buy_again", score=rank_buy_again,
                reason=buy_again_reason),
    SectionSpec(id="trending", title="Trending at your store", source="trending", score=rank_trending,
                reason=trending_reason),
)  # fmt: skip


def select_sections(
    candidates: Iterable[FeedCandidate], specs: Sequence[SectionSpec], size: int, context: RankingContext
) -> list[FeedSection]:
    """Fill each section with its source's best `size` candidates, never showing an item twice on a page.

    `candidates` may come in any order; within a section, higher scores go first (ties by item_id).
    Sections left empty are omitted.
    """
    by_source: dict[str, list[FeedCandidate]] = {}
    for candidate in candidates:
        by_source.setdefault(candidate.source, []).append(candidate)
    shown: set[str] = set()
    sections = []
    for spec in specs:
        scored = [(spec.score(c, context), c) for c in by_source.get(spec.source, [])]
        scored.sort(key=lambda pair: (-pair[0], pair[1].item_id))
        chosen = [(score, c) for score, c in scored if c.item_id not in shown][:size]
        shown.update(c.item_id for _, c in chosen)
        if chosen:
            sections.append(
                FeedSection(
                    id=spec.id,
                    title=spec.title,
                    items=[
                        FeedItem(
                            item_id=c.item_id,
                            name=c.name,
                            brand=c.brand,
                            department=c.department,
                            aisle=c.aisle,
                            price=c.price,
                            score=round(score, 6),
                            reason=spec.reason(c),
                        )
                        for score, c in chosen
                    ],
                )
            )
    return sections
