"""Selection of feed sections from ranked candidates."""

from datetime import UTC, datetime
from decimal import Decimal

from feedcore.db.feed import FeedCandidate
from feedcore.feed.sections import SECTIONS, buy_again_reason, select_sections


def candidate(source: str, item_id: str, score: float, purchases: int | None = None) -> FeedCandidate:
    return FeedCandidate(
        source=source,
        item_id=item_id,
        score=score,
        purchase_count=purchases,
        last_purchased_at=datetime(2026, 11, 20, tzinfo=UTC) if purchases else None,
        name=item_id.title(),
        brand=None,
        department="Dept",
        aisle="Aisle",
        price=Decimal("1.00"),
    )


def ids(sections) -> dict[str, list[str]]:
    return {s.id: [i.item_id for i in s.items] for s in sections}


def test_sections_in_declared_order_ranked_by_score():
    got = select_sections(
        [
            candidate("trending", "b", 1.0),
            candidate("buy_again", "x", 2.0, 3),
            candidate("trending", "a", 5.0),
            candidate("buy_again", "y", 9.0, 1),
        ],
        SECTIONS,
        size=10,
    )
    assert ids(got) == {"buy_again": ["y", "x"], "trending": ["a", "b"]}
    assert [s.id for s in got] == ["buy_again", "trending"]


def test_an_item_appears_once_per_page_in_the_earlier_section():
    got = select_sections(
        [candidate("buy_again", "milk", 1.0, 2), candidate("trending", "milk", 9.0), candidate("trending", "eggs", 1)],
        SECTIONS,
        size=10,
    )
    assert ids(got) == {"buy_again": ["milk"], "trending": ["eggs"]}


def test_size_caps_sections_after_dedup_and_ties_break_by_item_id():
    got = select_sections(
        [candidate("buy_again", "a", 1.0, 1)] + [candidate("trending", i, 1.0) for i in "dcba"], SECTIONS, size=2
    )
    assert ids(got) == {"buy_again": ["a"], "trending": ["b", "c"]}


def test_empty_sections_are_left_out():
    assert ids(select_sections([candidate("trending", "a", 1.0)], SECTIONS, size=5)) == {"trending": ["a"]}
    assert select_sections([], SECTIONS, size=5) == []


def test_buy_again_reason_counts_purchases_and_says_when():
    assert buy_again_reason(candidate("buy_again", "a", 1.0, 1)) == "You bought this once, last on Nov 20"
    assert buy_again_reason(candidate("buy_again", "a", 1.0, 4)) == "You bought this 4 times, last on Nov 20"
