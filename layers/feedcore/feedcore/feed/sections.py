"""Sections of the feed as declarations, and the pure selection of their items."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from feedcore.api.models import FeedItem, FeedSection
from feedcore.db.feed import FeedCandidate


def buy_again_reason(candidate: FeedCandidate) -> str:
    count = candidate.purchase_count or 0
    bought = "You bought this once" if count == 1 else f"You bought this {count} times"
    if candidate.last_purchased_at is None:
        return bought
    return f"{bought}, last on {candidate.last_purchased_at:%b} {candidate.last_purchased_at.day}"


def trending_reason(_: FeedCandidate) -> str:
    return "Popular at your store"


@dataclass(frozen=True)
class SectionSpec:
    """A section: which candidate source fills it, its title, and how to explain an item."""

    id: str
    title: str
    source: str
    reason: Callable[[FeedCandidate], str]


# In display order; a section earlier in the list claims an item before a later one can repeat it.
SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec(id="buy_again", title="Buy it again", source="buy_again", reason=buy_again_reason),
    SectionSpec(id="trending", title="Trending at your store", source="trending", reason=trending_reason),
)


def select_sections(candidates: Iterable[FeedCandidate], specs: Sequence[SectionSpec], size: int) -> list[FeedSection]:
    """Fill each section with its source's best `size` candidates, never showing an item twice on a page.

    `candidates` may come in any order; within a source, higher scores go first (ties by item_id).
    Sections left empty are omitted.
    """
    by_source: dict[str, list[FeedCandidate]] = {}
    for candidate in candidates:
        by_source.setdefault(candidate.source, []).append(candidate)
    shown: set[str] = set()
    sections = []
    for spec in specs:
        ranked = sorted(by_source.get(spec.source, []), key=lambda c: (-c.score, c.item_id))
        chosen = [c for c in ranked if c.item_id not in shown][:size]
        shown.update(c.item_id for c in chosen)
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
                            score=round(c.score, 6),
                            reason=spec.reason(c),
                        )
                        for c in chosen
                    ],
                )
            )
    return sections
