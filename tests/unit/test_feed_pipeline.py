"""The feed's pure parts: filters, scoring, selection, cursors, the ranking config and variant assignment."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from msgspec.structs import replace
from pydantic_core import to_json

from feedcore.db.feed import Candidate
from feedcore.errors import ConfigurationError, FeedExpired, InvalidCursor
from feedcore.feed import cursors
from feedcore.feed import service as feed_service
from feedcore.feed.config import ALL_FILTERS, SectionConfig, default_ranking_config, parse_ranking_config
from feedcore.feed.cursors import CursorKeys, PagePosition, decode_cursor, encode_cursor
from feedcore.feed.experiments import assign, bucket
from feedcore.feed.pipeline import (
    FILTERS,
    Ranked,
    RankingContext,
    SourceCandidates,
    apply_filters,
    only_just_purchased_applies,
    rank,
    select,
    select_sections,
)
from feedcore.feed.reasons import reason
from feedcore.feed.scoring import BuyAgainParams, buy_again_score, due_ness, rebuy_rate, repeat_probability

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
CONTEXT = RankingContext(
    now=NOW, buy_again=BuyAgainParams(), filters=ALL_FILTERS, just_purchased=timedelta(days=3),
    just_purchased_max_due=0.5, just_purchased_min_rebuy_rate=0.5, excluded_tags=frozenset({"alcohol"}),
)  # fmt: skip
KEY = b"test key"
KEYS = CursorKeys(KEY)
SCOPE = "store-a|alcohol"


def candidate(item_id: str = "milk", source: str = "popular", **fields) -> Candidate:
    values = dict(
        source=source, source_score=None, seed_name=None, item_id=item_id, name=item_id.title(),
        brand="Brand", department="Dairy", aisle="Milk", tags=[], active=True, created_at=NOW - timedelta(days=400),
        available=True, price=Decimal("1.00"), purchase_count=0, first_purchased_at=None, last_purchased_at=None,
        purchase_raw=0.0, affinity_raw=0.0, hidden=False, last_hidden_at=None, item_orders=0, item_buyers=0,
        popularity_raw=1.0,
        trending_score=0.0, model_score=None, recent_purchase_at=None, recent_hide_at=None,
        recent_positive_at=None, in_cart=False, store_known=True,
    )  # fmt: skip
    return Candidate(**(values | fields))


# --- buy-again timing -------------------------------------------------------------------------------


def test_due_ness_peaks_when_the_usual_interval_has_passed():
    weekly = {"purchase_count": 5, "first": NOW - timedelta(days=35), "width": 0.7}
    due = {days: due_ness(last=NOW - timedelta(days=days), now=NOW, **weekly) for days in (0, 3, 7, 14, 30)}

    assert due[7] == pytest.approx(1.0, abs=0.01)
    assert due[0] < due[3] < due[7] and due[7] > due[14] > due[30]
    assert due_ness(1, NOW, NOW, NOW, 0.5) == 0.0  # a single purchase has no interval


def test_milk_bought_weekly_and_due_outranks_milk_bought_as_often_but_yesterday():
    params = BuyAgainParams()
    milk = {"now": NOW, "params": params, "item_orders": 900, "item_buyers": 100}
    due_soon = buy_again_score(4.0, 4, NOW - timedelta(days=27), NOW - timedelta(days=6), **milk)
    just_bought = buy_again_score(4.0, 4, NOW - timedelta(days=22), NOW - timedelta(days=1), **milk)
    yearly = buy_again_score(4.0, 4, NOW - timedelta(days=1100), NOW - timedelta(days=6), **milk)

    assert due_soon > just_bought and due_soon > yearly


def test_of_two_items_bought_alike_the_one_its_buyers_rebuy_ranks_first():
    bought = (4.0, 4, NOW - timedelta(days=27), NOW - timedelta(days=6), NOW, BuyAgainParams())
    staple = buy_again_score(*bought, item_orders=900, item_buyers=100)  # 8 of 9 orders holding it are repeats
    one_off = buy_again_score(*bought, item_orders=120, item_buyers=100)  # most of its buyers tried it once

    assert staple > one_off
    assert repeat_probability(0, 0) == 0.5  # nothing known: neither
    assert repeat_probability(1, 1) < 0.5 < repeat_probability(3, 1)  # one buyer: once, or three times


def test_rebuy_rate_is_the_share_of_the_users_later_orders_that_held_the_item_again():
    weeks = [NOW - timedelta(days=7 * n) for n in range(9, -1, -1)]  # ten weekly orders, the last one now

    assert rebuy_rate(10, weeks[0], weeks) == 1.0  # milk: in every basket
    assert rebuy_rate(2, weeks[0], weeks) == 1 / 9  # jam: in one of the nine since its first
    assert rebuy_rate(5, weeks[5], weeks) == 1.0  # flour: in every order since its first (the sixth)
    assert rebuy_rate(1, weeks[-1], weeks) == 0.0  # first bought in the latest order: nothing known yet
    assert rebuy_rate(3, weeks[0], []) == 0.0  # no order known


# --- filters ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"active": False}, "inactive"),
        ({"available": False}, "unavailable"),
        ({"hidden": True}, "hidden"),
        ({"recent_hide_at": NOW - timedelta(minutes=1)}, "hidden"),
        ({"tags": ["organic", "alcohol"]}, "excluded_tags"),
        ({"recent_purchase_at": NOW - timedelta(hours=2)}, "just_purchased"),
        ({"in_cart": True}, "in_cart"),
    ],
    ids=["inactive", "unavailable", "hidden", "hidden-just-now", "excluded-tag", "just-purchased", "in-cart"],
)
def test_each_filter_removes_what_it_should(fields, expected):
    kept, removed = apply_filters([candidate(**fields), candidate("eggs")], CONTEXT)

    assert [c.item_id for c in kept] == ["eggs"]
    assert [(r.item_id, r.filter) for r in removed] == [("milk", expected)]


@pytest.mark.parametrize(
    "fields",
    [
        {"active": False}, {"available": False}, {"tags": ["alcohol"]}, {"in_cart": True}, {"hidden": True},
        {"recent_hide_at": NOW}, {"recent_positive_at": NOW},
    ],
)  # fmt: skip
def test_a_candidate_another_filter_could_remove_goes_through_the_filters(fields):
    """`only_just_purchased_applies` lets a candidate skip the other filters: only one that none of them can remove."""
    plain = candidate(available=None, tags=["organic"])
    assert only_just_purchased_applies(plain, CONTEXT.excluded_tags)
    assert not any(FILTERS[name](plain, CONTEXT) for name in ALL_FILTERS if name != "just_purchased")
    assert not only_just_purchased_applies(candidate(**fields), CONTEXT.excluded_tags)


@pytest.mark.parametrize("days_ago", [0.5, 2, 10])
@pytest.mark.parametrize(
    "filters",
    [ALL_FILTERS, [f for f in ALL_FILTERS if f != "just_purchased"], ["just_purchased", "hidden", "inactive"]],
)
def test_a_bought_candidate_is_filtered_as_by_the_configured_filters_in_turn(days_ago, filters):
    """A bought item that only just_purchased could remove comes out of apply_filters as out of the configured
    filters called one by one in their order (the first that applies removes it), whichever filters a config
    names."""
    context = replace(CONTEXT, filters=tuple(filters))
    bought_at = NOW - timedelta(days=days_ago)
    bought = candidate(purchase_count=2, first_purchased_at=bought_at - timedelta(days=7), last_purchased_at=bought_at)
    first = next((name for name in context.filters if FILTERS[name](bought, context)), None)

    kept, removed = apply_filters([bought], context)

    assert only_just_purchased_applies(bought, context.excluded_tags)
    assert [r.filter for r in removed] == ([first] if first else []) and len(kept) == (first is None)
    # bought half a day ago, the item is one just_purchased removes (when the config has it); ten days ago, kept
    if days_ago == 0.5:
        assert (first == "just_purchased") == ("just_purchased" in filters)
    if days_ago == 10:
        assert first is None


def test_unknown_availability_and_allowed_tags_pass():
    kept, removed = apply_filters([candidate(available=None, tags=["organic"])], CONTEXT)
    assert len(kept) == 1 and not removed


def test_a_purchase_or_cart_addition_after_a_hide_unhides():
    hidden_then_bought = candidate(
        hidden=True, last_hidden_at=NOW - timedelta(days=3), recent_positive_at=NOW - timedelta(days=1)
    )
    bought_then_hidden = candidate(recent_positive_at=NOW - timedelta(hours=2), recent_hide_at=NOW - timedelta(hours=1))
    context = replace(CONTEXT, filters=("hidden",))

    assert apply_filters([hidden_then_bought], context)[1] == []
    assert [r.filter for r in apply_filters([bought_then_hidden], context)[1]] == ["hidden"]


def test_just_purchased_keeps_items_due_again():
    daily = candidate(
        purchase_count=10, first_purchased_at=NOW - timedelta(days=10), last_purchased_at=NOW - timedelta(days=1)
    )
    monthly = replace(daily, first_purchased_at=NOW - timedelta(days=300))
    context = replace(CONTEXT, filters=("just_purchased",))

    assert apply_filters([daily], context)[1] == []  # bananas daily: due again today
    assert [r.filter for r in apply_filters([monthly], context)[1]] == ["just_purchased"]


def test_just_purchased_keeps_a_staple_of_the_users_baskets():
    # Weekly orders, the last two days ago: milk is in every one of them, flour in three. By their timing
    # neither is due yet; milk will be in the next order whenever it comes, flour most likely not.
    orders = [NOW - timedelta(days=2 + 7 * n) for n in range(9, -1, -1)]
    milk = candidate(purchase_count=10, first_purchased_at=orders[0], last_purchased_at=orders[-1])
    flour = candidate("flour", purchase_count=3, first_purchased_at=orders[0], last_purchased_at=orders[-1])
    context = replace(CONTEXT, filters=("just_purchased",), ordered_at=orders)

    assert [r.item_id for r in apply_filters([milk, flour], context)[1]] == ["flour"]
    unknown_orders = replace(context, ordered_at=())
    assert [r.item_id for r in apply_filters([milk, flour], unknown_orders)[1]] == ["milk", "flour"]


def test_a_staple_is_judged_by_every_order_of_the_user_not_only_those_its_item_rows_show():
    # Ten orders two days apart, the last two days ago: bread in the even ones, butter in the odd ones, eggs in the
    # first and the last. The item rows show four order instants (bread's and butter's first and last) and at
    # least five orders after eggs' first (butter's); there were nine: eggs came back in one of nine, no staple.
    orders = [NOW - timedelta(days=2 + 2 * n) for n in range(9, -1, -1)]
    eggs = candidate("eggs", purchase_count=2, first_purchased_at=orders[0], last_purchased_at=orders[-1])
    context = replace(CONTEXT, filters=("just_purchased",), just_purchased_min_rebuy_rate=0.15, ordered_at=orders)

    assert [r.item_id for r in apply_filters([eggs], context)[1]] == ["eggs"]
    assert [r.item_id for r in apply_filters([eggs], replace(context, just_purchased_min_rebuy_rate=0.1))[1]] == []


def test_a_staple_bought_in_the_latest_hours_leaves_buy_again():
    orders = [NOW - timedelta(hours=2) - timedelta(days=7 * n) for n in range(9, -1, -1)]
    milk = candidate(
        purchase_count=10, first_purchased_at=orders[0], last_purchased_at=orders[-1], recent_purchase_at=orders[-1]
    )
    context = replace(CONTEXT, filters=("just_purchased",), ordered_at=orders)

    assert [r.filter for r in apply_filters([milk], context)[1]] == ["just_purchased"]


def test_filters_the_config_leaves_out_do_not_run():
    assert apply_filters([candidate(in_cart=True)], replace(CONTEXT, filters=("inactive",)))[1] == []


def test_removals_come_in_candidate_order_each_with_the_first_filter_that_removed_it():
    # Filters run one at a time over the candidates still kept (feedcore.feed.pipeline.FILTERS).
    candidates = [
        candidate("a", in_cart=True), candidate("b"), candidate("c", active=False, in_cart=True),
        candidate("d", tags=["alcohol"]), candidate("e", available=False, in_cart=True),
    ]  # fmt: skip

    kept, removed = apply_filters(candidates, CONTEXT)

    assert [c.item_id for c in kept] == ["b"]
    assert [(r.item_id, r.filter) for r in removed] == [
        ("a", "in_cart"),
        ("c", "inactive"),
        ("d", "excluded_tags"),
        ("e", "unavailable"),
    ]


# --- scoring and selection --------------------------------------------------------------------------


def test_signals_are_normalized_within_the_section_and_weighted():
    candidates = [candidate("a", popularity_raw=10, affinity_raw=0), candidate("b", popularity_raw=5, affinity_raw=4)]

    ranked = rank(candidates, {"popularity": 1.0, "affinity": 2.0}, CONTEXT)

    assert [(r.candidate.item_id, r.score) for r in ranked] == [("b", 2.5), ("a", 1.0)]
    assert ranked[0].contributions == {"popularity": 0.5, "affinity": 2.0}


def test_the_aisle_affinity_signal_is_the_users_affinity_to_the_items_aisle():
    candidates = [candidate("a", aisle="Milk"), candidate("b", aisle="Tea"), candidate("c", aisle="Bread")]
    context = replace(CONTEXT, aisle_affinities={"Tea": 4.0, "Milk": 1.0})

    ranked = rank(candidates, {"aisle_affinity": 1.0}, context)

    assert [(r.candidate.item_id, r.score) for r in ranked] == [("b", 1.0), ("a", 0.25), ("c", 0.0)]


def test_a_signal_no_candidate_has_contributes_nothing():
    ranked = rank([candidate("a"), candidate("b", popularity_raw=3)], {"popularity": 1.0, "model": 5.0}, CONTEXT)
    assert [r.candidate.item_id for r in ranked] == ["b", "a"]
    assert ranked[0].contributions["model"] == 0.0


def test_negative_model_scores_keep_their_order():
    models = [
        candidate(n, source="model:m", source_score=score) for n, score in (("a", -9.0), ("b", -0.1), ("c", -5.0))
    ]

    ranked = rank(models, {"model": 1.0}, CONTEXT)

    assert [(r.candidate.item_id, r.score) for r in ranked] == [("b", 1.0), ("c", pytest.approx(4 / 8.9)), ("a", 0.0)]


def test_model_scores_as_far_apart_as_floats_go_keep_their_order_and_finite_scores():
    # A model file may hold any finite score; the span of these two is past the largest float.
    models = [
        candidate(n, source="model:m", source_score=score) for n, score in (("a", -1e308), ("b", 0.0), ("c", 1e308))
    ]

    ranked = rank(models, {"model": 1.0}, replace(CONTEXT, explain=True))

    assert [(r.candidate.item_id, r.score) for r in ranked] == [("c", 1.0), ("b", 0.5), ("a", 0.0)]
    assert [r.contributions for r in ranked] == [{"model": 1.0}, {"model": 0.5}, {"model": 0.0}]


def test_a_model_section_ranks_by_its_own_model_not_the_best_of_all_models():
    # model_score is the best score over every model of the config; the section's own model says otherwise.
    models = [
        candidate("a", source="model:m", source_score=0.2, model_score=0.2),
        candidate("b", source="model:m", source_score=0.1, model_score=50.0),
    ]

    assert [r.candidate.item_id for r in rank(models, {"model": 1.0}, CONTEXT)] == ["a", "b"]


def test_a_purchase_already_scored_is_not_counted_twice():
    # Bought every three days; the last purchase, six hours ago, is both scored and among the recent events.
    # Counted once, the usual interval is 3 days and the item is not due: removed. Counted twice, the interval
    # would look like 1.5 days and the item due again.
    bought = NOW - timedelta(hours=6)
    every_three_days = candidate(
        purchase_count=2, first_purchased_at=bought - timedelta(days=3), last_purchased_at=bought,
        recent_purchase_at=bought,
    )  # fmt: skip
    context = replace(CONTEXT, filters=("just_purchased",))

    assert [r.filter for r in apply_filters([every_three_days], context)[1]] == ["just_purchased"]


def test_ties_rank_by_item_id_so_feeds_are_deterministic():
    ranked = rank([candidate("c"), candidate("a"), candidate("b")], {"popularity": 1.0}, CONTEXT)
    assert [r.candidate.item_id for r in ranked] == ["a", "b", "c"]


def test_an_item_proposed_twice_with_the_same_score_keeps_its_proposal_order():
    # A model's user-level and item-level lists can both propose an item (see gather_candidates).
    own = candidate("a", source="model:m", source_score=2.0)
    item_level = candidate("a", source="model:m", source_score=2.0, model_score=1.0)

    assert [r.candidate for r in rank([own, item_level], {"model": 1.0}, CONTEXT)] == [own, item_level]
    assert [r.candidate for r in rank([item_level, own], {"model": 1.0}, CONTEXT)] == [item_level, own]


def section(**fields) -> SectionConfig:
    return SectionConfig(**({"id": "s", "title": "S", "source": "popular", "weights": {"popularity": 1.0}} | fields))


def test_selection_caps_aisles_and_brands_and_skips_items_already_shown():
    pool = [
        candidate("m1", aisle="Milk", brand="A", popularity_raw=9),
        candidate("m2", aisle="Milk", brand="B", popularity_raw=8),
        candidate("m3", aisle="Milk", brand="C", popularity_raw=7),  # third milk: over the aisle cap
        candidate("e1", aisle="Eggs", brand="A", popularity_raw=6),  # third of brand A with m1… cap 2 allows it
        candidate("e2", aisle="Eggs", brand="A", popularity_raw=5),  # brand A's third: over the brand cap
        candidate("b1", aisle="Bread", brand=None, popularity_raw=4),
        candidate("seen", aisle="Bread", brand="D", popularity_raw=10),
    ]
    shown = {"seen"}

    chosen = select(rank(pool, {"popularity": 1.0}, CONTEXT), section(max_per_aisle=2, max_per_brand=2), shown, list)

    assert [r.candidate.item_id for r in chosen] == ["m1", "m2", "e1", "b1"]
    assert shown == {"seen", "m1", "m2", "e1", "b1"}


def unasked() -> list[Ranked]:
    raise AssertionError("popular items ranked for a section that does not starve")


def test_a_starving_section_is_backfilled_from_popular_items():
    own = rank([candidate("t1", source="trending", trending_score=2)], {"trending": 1.0}, CONTEXT)
    popular = rank([candidate("p1", popularity_raw=3), candidate("t1"), candidate("p2")], {"popularity": 1.0}, CONTEXT)

    chosen = select(own, section(size=3, backfill_below=2), set(), lambda: popular)

    assert [(r.candidate.item_id, r.backfill) for r in chosen] == [("t1", False), ("p1", True), ("p2", True)]
    assert select(own, section(size=3, backfill_below=1), set(), unasked)[1:] == []  # enough: no backfill


def test_sections_follow_the_declared_order_and_never_repeat_an_item():
    specs = [
        section(id="first", source="trending", weights={"trending": 1.0}, size=2),
        section(id="second", size=5),
        section(id="empty", source="new_arrivals", weights={"newness": 1.0}),
    ]
    candidates = [
        SourceCandidates("popular", [candidate("a", popularity_raw=9), candidate("c", popularity_raw=1),
                                     candidate("gone", active=False)]),
        SourceCandidates("trending", [candidate("a", source="trending", trending_score=2),
                                      candidate("b", source="trending", trending_score=1)]),
    ]  # fmt: skip

    sections, removed = select_sections(candidates, specs, CONTEXT)

    assert [(s.spec.id, [r.candidate.item_id for r in s.items]) for s in sections] == [
        ("first", ["a", "b"]),
        ("second", ["c"]),
    ]
    assert [(r.item_id, r.filter) for r in removed] == [("gone", "inactive")]


# --- cursors ----------------------------------------------------------------------------------------


FEED_ID = "5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b"  # as the service makes them: uuid4().hex


def position(**fields) -> PagePosition:
    defaults = {
        "feed_id": FEED_ID,
        "user_id": "u1",
        "offset": 4,
        "expires_at": NOW + timedelta(minutes=5),
        "scope": SCOPE,
    }
    return PagePosition(**(defaults | fields))


def test_a_cursor_round_trips_to_the_same_position():
    assert decode_cursor(encode_cursor(position(), KEY), KEYS, "u1", SCOPE, NOW) == position()


def test_a_cursor_signed_with_the_other_key_of_a_rotation_round_trips():
    rotating = CursorKeys(b"new key", (KEY,))

    assert decode_cursor(encode_cursor(position(), KEY), rotating, "u1", SCOPE, NOW) == position()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:5] + ("A" if c[5] != "A" else "B") + c[6:],  # payload changed
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # signature changed
        lambda c: c.replace(".", ""),
        lambda c: "",
        lambda c: "!!!.???",
    ],
    ids=["payload", "signature", "no-separator", "empty", "not-base64"],
)
def test_a_tampered_cursor_is_invalid(tamper):
    with pytest.raises(InvalidCursor):
        decode_cursor(tamper(encode_cursor(position(), KEY)), KEYS, "u1", SCOPE, NOW)


def signed(payload: bytes) -> str:
    """A cursor signed with KEY around any payload, as anyone holding the (public) development key can make."""
    return f"{cursors._b64(payload)}.{cursors._b64(cursors._mac(KEY, payload))}"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b"{}",
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":4,"e":1900000000}',
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":"4","e":1900000000,"s":"store-a|"}',
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":-1,"e":1900000000,"s":"store-a|"}',
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":true,"e":1900000000,"s":"store-a|"}',
        b'{"f":1,"u":"u1","o":4,"e":1900000000,"s":"store-a|"}',
        # the feed id reaches a query: only what the service issues (uuid4().hex), no NUL or lone surrogate
        b'{"f":"f1","u":"u1","o":4,"e":1900000000,"s":"store-a|"}',
        b'{"f":"\\u0000","u":"u1","o":4,"e":1900000000,"s":"store-a|"}',
        b'{"f":"\\ud800","u":"u1","o":4,"e":1900000000,"s":"store-a|"}',
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":4,"e":"soon","s":"store-a|"}',
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":4,"e":1e400,"s":"store-a|"}',
        b'{"f":"5f0c6a3e9b2d4e7f8a1b2c3d4e5f6a7b","u":"u1","o":4,"e":99999999999999999999,"s":"store-a|"}',
    ],
)
def test_a_validly_signed_cursor_that_holds_no_position_is_invalid(payload):
    with pytest.raises(InvalidCursor, match="holds no page position"):
        decode_cursor(signed(payload), KEYS, "u1", SCOPE, NOW)


def test_a_cursor_signed_with_another_key_or_for_another_user_or_scope_is_invalid():
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(position(), b"other key"), KEYS, "u1", SCOPE, NOW)
    with pytest.raises(InvalidCursor):  # nor with a key that only verifies (the other of a rotation's two)
        decode_cursor(encode_cursor(position(), b"other key"), CursorKeys(KEY, (b"previous key",)), "u1", SCOPE, NOW)
    with pytest.raises(InvalidCursor, match="another user"):
        decode_cursor(encode_cursor(position(), KEY), KEYS, "u2", SCOPE, NOW)
    with pytest.raises(InvalidCursor, match="another store_id or exclude_tags"):
        decode_cursor(encode_cursor(position(), KEY), KEYS, "u1", "store-b|alcohol", NOW)


def test_an_expired_cursor_is_gone():
    with pytest.raises(FeedExpired):
        decode_cursor(encode_cursor(position(expires_at=NOW - timedelta(seconds=1)), KEY), KEYS, "u1", SCOPE, NOW)


# --- config and experiments -------------------------------------------------------------------------


def test_the_packaged_config_is_valid_and_its_variants_reorder_sections():
    ranking = default_ranking_config()
    control = [s.id for s in ranking.variant_config("control").ordered_sections]
    treatment = [s.id for s in ranking.variant_config("trending_first").ordered_sections]

    assert control[0] == "buy_again" and treatment[0] == "trending"
    assert sorted(control) == sorted(treatment)


def rename_control(document: dict, name: str) -> None:
    variants = document["experiment"]["variants"]
    variants[name] = variants.pop("control")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["experiment"]["variants"]["control"].update(traffic=10), "add up to 100"),
        (lambda d: d["base"].update(section_order=["buy_again", "nope"]), "section_order"),
        (lambda d: d["experiment"]["variants"]["control"].update(overrides={"section_order": []}), "section_order"),
        (lambda d: d["base"]["sections"][0].update(source="model"), "model"),
        (lambda d: d["base"]["sections"][0].update(weights={"magic": 1.0}), "weights"),
        (lambda d: d["base"]["sections"].append(d["base"]["sections"][0]), "unique"),
        (lambda d: d["experiment"]["variants"]["control"].update(overrides={"sections": []}), "sections"),
        # What the API promises of every feed (README): active items the store sells, none the user hid, none with a
        # tag the request excludes. A config orders those filters and chooses the others.
        (lambda d: d["base"].update(filters=["just_purchased", "in_cart"]), "filters must include"),
        (
            lambda d: d["experiment"]["variants"]["control"].update(overrides={"filters": ["inactive", "unavailable"]}),
            "filters must include",
        ),
        (lambda d: d["base"].update(filters=[*d["base"]["filters"], "hidden"]), "at most once"),
        # Every weight 0 would rank the section's items by id: a section is hidden by leaving it out of the order.
        (lambda d: d["base"]["sections"][0].update(weights={"buy_again": 0.0, "affinity": 0.0}), "weight above 0"),
        # A variant's name is a metric dimension (CloudWatch drops a record with an empty one or one over 1,024
        # characters, and with it the variant's FeedServed count), a response field and a report row.
        (lambda d: rename_control(d, ""), "variants"),
        (lambda d: rename_control(d, "c" * 2000), "variants"),
        (lambda d: rename_control(d, "Control A"), "variants"),
        # Names the service gives things of its own: the report's bucket of events naming no section or no feed it can
        # match, and the variant of degraded pages (FeedServed's dimension).
        (lambda d: d["base"]["sections"].append(d["base"]["sections"][0] | {"id": "unknown"}), "'unknown' is reserved"),
        (lambda d: rename_control(d, "degraded"), "'degraded' is reserved"),
        (lambda d: rename_control(d, "unknown"), "'unknown' is reserved"),
    ],
    ids=[
        "traffic",
        "unknown-section",
        "no-section-shown",
        "model-without-name",
        "unknown-signal",
        "duplicate-id",
        "bad-override",
        "filters-without-the-promised-ones",
        "variant-dropping-promised-filters",
        "filter-named-twice",
        "all-weights-zero",
        "empty-variant-name",
        "long-variant-name",
        "variant-name-with-a-space",
        "section-named-unknown",
        "variant-named-degraded",
        "variant-named-unknown",
    ],  # fmt: skip
)
def test_an_invalid_config_is_refused_naming_the_problem(change, message):
    document = default_ranking_config().model_dump()
    change(document)
    with pytest.raises(ConfigurationError, match=message):
        parse_ranking_config(document, "test")


def test_assignment_is_deterministic_and_splits_traffic():
    ranking = default_ranking_config()
    assignments = [assign(ranking, f"user-{n}").variant for n in range(4000)]

    assert assignments == [assign(ranking, f"user-{n}").variant for n in range(4000)]
    assert 0.45 < assignments.count("control") / 4000 < 0.55
    # Buckets of different experiments are independent.
    same = sum((bucket("a", f"user-{n}") < 50) == (bucket("b", f"user-{n}") < 50) for n in range(4000))
    assert 0.45 < same / 4000 < 0.55


# --- reasons ----------------------------------------------------------------------------------------


def test_the_buy_again_reason_names_the_last_purchase_as_strftime_would():
    for month in range(1, 13):
        last = datetime(2026, month, month + 9, 8, tzinfo=UTC)
        bought = candidate(source="buy_again", purchase_count=3, last_purchased_at=last)

        assert reason(Ranked(bought, 1.0, {})) == f"You bought this 3 times, last on {last:%b} {last.day}"
    assert reason(Ranked(candidate(source="buy_again", purchase_count=1), 1.0, {})) == "You bought this once"


def test_a_feed_is_written_as_pydantic_core_would_write_it():
    rng = random.Random(7)
    items = [
        {
            "item_id": f"item-{n}", "name": "Crème fraîche \u2028 \"<b>\" \\ 🥛", "brand": None if n % 3 else "Brand",
            "department": "Dairy", "aisle": "Milk", "price": round(rng.uniform(0, 10 ** rng.randint(0, 8)), 2),
            "reason": "You bought this 3 times", "tracking": f"f:buy_again:{n}",
            "debug": {
                "source": "buy_again", "score": round(rng.random() * 10 ** rng.randint(-9, 3), 6),
                "contributions": {"buy_again": round(rng.random() * 10 ** rng.randint(-9, 2), 6), "newness": 0.0},
                "backfill": n % 2 == 0,
            },
        }
        for n in range(2000)
    ]  # fmt: skip
    feed = {"feed_id": "f", "generated_at": NOW + timedelta(microseconds=120_000), "degraded": False, "sections": items}

    assert feed_service._json(feed) == to_json(feed).decode()
    assert (
        feed_service._json([0.0, 1.0, 2.99, 1e-7, 1e15, 123456.789])
        == to_json([0.0, 1.0, 2.99, 1e-7, 1e15, 123456.789]).decode()
    )
