"""Ranking and selection of feed sections from candidates."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from feedcore.db.feed import FeedCandidate
from feedcore.feed.scoring import BuyAgainParams, buy_again_score, decayed, due_ness
from feedcore.feed.sections import SECTIONS, RankingContext, buy_again_reason, select_sections

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)
CONTEXT = RankingContext(now=NOW, buy_again=BuyAgainParams(), buy_again_half_life_days=30)


def candidate(source: str, item_id: str, raw: float, purchases: int = 0, first_days_ago: float = 0,
              last_days_ago: float = 0) -> FeedCandidate:  # fmt: skip
    bought = purchases > 0
    return FeedCandidate(
        source=source, item_id=item_id, raw_score=raw, epoch=EPOCH, purchase_count=purchases or None,
        first_purchased_at=NOW - timedelta(days=first_days_ago) if bought else None,
        last_purchased_at=NOW - timedelta(days=last_days_ago) if bought else None,
        name=item_id.title(), brand=None, department="Dept", aisle="Aisle", price=Decimal("1.00"),
    )  # fmt: skip


def ids(sections) -> dict[str, list[str]]:
    return {s.id: [i.item_id for i in s.items] for s in sections}


def test_due_ness_peaks_when_the_usual_interval_has_passed():
    weekly = {"purchase_count": 5, "first": NOW - timedelta(days=34), "width": 0.7}
    due = {days: due_ness(last=NOW - timedelta(days=days), now=NOW, **weekly) for days in (0, 3, 7, 14, 30)}

    assert due[7] == pytest.approx(1.0, abs=0.02)
    assert due[0] < due[3] < due[7] > due[14] > due[30]
    assert due_ness(1, NOW, NOW, NOW, 0.5) == 0.0  # a single purchase has no interval


def test_weekly_milk_bought_six_days_ago_outranks_milk_bought_as_often_yesterday():
    due_soon = candidate("buy_again", "milk-a", raw=10.0, purchases=5, first_days_ago=34, last_days_ago=6)
    just_bought = candidate("buy_again", "milk-b", raw=10.0, purchases=5, first_days_ago=29, last_days_ago=1)
    yearly = candidate("buy_again", "turkey", raw=10.0, purchases=2, first_days_ago=400, last_days_ago=35)

    scores = {c.item_id: buy_again_score(c, NOW, BuyAgainParams()) for c in (due_soon, just_bought, yearly)}

    assert scores["milk-a"] > scores["milk-b"]
    assert scores["milk-a"] > scores["turkey"]


def test_decayed_halves_a_score_every_half_life():
    assert decayed(8.0, EPOCH, EPOCH + timedelta(days=14), 7) == pytest.approx(2.0)


def test_sections_in_declared_order_ranked_by_score():
    got = select_sections(
        [candidate("trending", "b", 1.0), candidate("buy_again", "x", 2.0, 3, 20, 10), candidate("trending", "a", 5.0),
         candidate("buy_again", "y", 9.0, 1, 5, 5)],
        SECTIONS, 10, CONTEXT,
    )  # fmt: skip
    assert ids(got) == {"buy_again": ["y", "x"], "trending": ["a", "b"]}
    assert [s.id for s in got] == ["buy_again", "trending"]


def test_an_item_appears_once_per_page_in_the_earlier_section():
    got = select_sections(
        [candidate("buy_again", "milk", 1.0, 2, 9, 2), candidate("trending", "milk", 9.0),
         candidate("trending", "eggs", 1)],
        SECTIONS, 10, CONTEXT,
    )  # fmt: skip
    assert ids(got) == {"buy_again": ["milk"], "trending": ["eggs"]}


def test_size_caps_sections_after_dedup_and_ties_break_by_item_id():
    got = select_sections(
        [candidate("buy_again", "a", 1.0, 1, 3, 3)] + [candidate("trending", i, 1.0) for i in "dcba"], SECTIONS, 2,
        CONTEXT,
    )  # fmt: skip
    assert ids(got) == {"buy_again": ["a"], "trending": ["b", "c"]}


def test_empty_sections_are_left_out():
    assert ids(select_sections([candidate("trending", "a", 1.0)], SECTIONS, 5, CONTEXT)) == {"trending": ["a"]}
    assert select_sections([], SECTIONS, 5, CONTEXT) == []


def test_shown_buy_again_scores_are_decayed_to_now():
    single = candidate("buy_again", "a", 4.0, 1, 3, 3)  # one purchase: no timing boost
    (section,) = select_sections([single], SECTIONS, 5, CONTEXT)
    assert section.items[0].score == pytest.approx(decayed(4.0, EPOCH, NOW, 30), rel=1e-5)


def test_buy_again_reason_counts_purchases_and_says_when():
    assert buy_again_reason(candidate("buy_again", "a", 1.0, 1, 6, 6)) == "You bought this once, last on Nov 20"
    assert buy_again_reason(candidate("buy_again", "a", 1.0, 4, 30, 6)) == "You bought this 4 times, last on Nov 20"
