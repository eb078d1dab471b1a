"""Why an item is shown, in words for the app (one per candidate source)."""

from __future__ import annotations

from feedcore.db.feed import Candidate
from feedcore.feed.pipeline import Ranked

# What strftime's %b writes (Python leaves LC_TIME in the C locale): a format through strftime costs ~22,000
# instructions, a few percent of a first page's.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _buy_again(candidate: Candidate) -> str:
    count = candidate.purchase_count
    bought = "You bought this once" if count == 1 else f"You bought this {count} times"
    last = candidate.last_purchased_at
    return bought if last is None else f"{bought}, last on {_MONTHS[last.month - 1]} {last.day}"


def _popular(candidate: Candidate) -> str:
    return "Popular at your store" if candidate.store_known else "Popular right now"


_REASONS = {
    "buy_again": _buy_again,
    "goes_well_with": lambda c: f"Goes well with {c.seed_name}" if c.seed_name else "Often bought together",
    "trending": lambda c: "Trending at your store" if c.store_known else "Trending right now",
    "popular": _popular,
    "favourite_aisles": lambda c: f"From your favourite aisle: {c.aisle}",
    "new_arrivals": lambda c: "New at your store" if c.store_known else "New in the catalog",
}


def reason(ranked: Ranked) -> str:
    """The reason shown with an item: its source's, or the popular one for an item backfilled into a section."""
    candidate = ranked.candidate
    if ranked.backfill:
        return _popular(candidate)
    if candidate.source.startswith("model:"):
        return "Picked for you"
    return _REASONS[candidate.source](candidate)
