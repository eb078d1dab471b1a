"""'Bought together' item pairs from purchase baskets, as the recompute maintains them and the feed reads them,
against the real database."""

from __future__ import annotations

import math
import random
import uuid
from datetime import timedelta

import psycopg
import pytest

from feedcore import settings
from feedcore.db import feed as feed_db
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.factories import NOW, create_catalog, event, purchase, record

POOL = 10  # paired items the feed reads per seed item


def feed_read(conn: psycopg.Connection, user_id: str) -> feed_db.UserRows:
    """The user's rows as the feed reads them (feed_user_own_rows), goes-well-with candidates among them."""
    query = feed_db.UserRowsQuery(
        user_id=user_id, models=(), pairs=True, pool=POOL, buy_again_pool=200,
        recent_since=NOW - timedelta(days=1), reorders=False,
    )  # fmt: skip
    return feed_db.user_rows(conn, query)


def pair_lists(conn: psycopg.Connection, *items: str) -> dict[str, list[str]]:
    """Each item's paired items, best first, as the feed reads them for a shopper who has just put the item in
    their cart (their one seed item)."""
    lists = {}
    for item in items:
        shopper = f"shopper-{uuid.uuid4().hex[:8]}"
        record(event("add_to_cart", shopper, item_id=item))
        pairs = feed_read(conn, shopper).pairs
        assert {seed for _, _, seed in pairs} <= {item}
        lists[item] = [paired for paired, _, _ in sorted(pairs, key=lambda pair: -pair[1])]
    return lists


def pair_rows(conn: psycopg.Connection) -> dict[tuple[str, str], float]:
    return {(a, b): score for a, b, score in conn.execute("SELECT item_id, paired_item_id, score FROM item_pairs")}


def baskets(*contents: tuple[tuple[str, ...], int], at_hours_ago: float = 1) -> list[dict]:
    """`count` purchases of each basket, each by its own user, all at the same moment."""
    at = NOW - timedelta(hours=at_hours_ago)
    return [
        purchase(f"user-{'-'.join(items)}-{n}", items=items, at=at) for items, count in contents for n in range(count)
    ]


def test_items_bought_together_in_many_baskets_rank_each_other_first(db: psycopg.Connection) -> None:
    create_catalog(db)
    record(
        *baskets(
            (("milk", "cereal"), 6),
            (("milk", "eggs", "bananas"), 3),
            (("coffee", "eggs"), 2),  # below the minimum support of 3
            (("bananas",), 4),
        )
    )

    recompute_scores(RecomputeRequest(), now=NOW)

    assert pair_lists(db, "milk", "cereal", "eggs", "coffee") == {
        "milk": ["cereal", "eggs", "bananas"],
        "cereal": ["milk"],
        "eggs": ["bananas", "milk"],
        "coffee": [],
    }
    # Cosine of the basket vectors: baskets with both / sqrt(baskets with each); milk is in 9, cereal in 6.
    scores = pair_rows(db)
    assert scores[("milk", "cereal")] == pytest.approx(6 / math.sqrt(9 * 6))
    assert scores[("eggs", "bananas")] == pytest.approx(3 / math.sqrt(5 * 7))
    assert scores[("milk", "cereal")] == scores[("cereal", "milk")]
    assert ("coffee", "eggs") not in scores and ("eggs", "coffee") not in scores


def test_the_feed_reads_the_best_pairs_of_each_seed_item_from_the_score_index(db: psycopg.Connection) -> None:
    """However long the lists, the feed reads each seed item's best POOL pairs from the index in its read order
    (item_id, score DESC, paired_item_id COLLATE "C"; migration 0106), and no entry more: no sort, where an index on
    (item_id, score DESC) gave one entry past the POOL (the next score, to tell that no pair ties with the last one
    kept) to an incremental sort. item_pairs here holds 60 pairs for each of 400 items, analyzed."""
    db.execute(
        "INSERT INTO item_pairs (item_id, paired_item_id, pair_raw, score)"
        " SELECT 'item-' || i, 'item-' || mod(i + k, 400), 1, 1.0 / k"
        " FROM generate_series(0, 399) AS i, generate_series(1, 60) AS k"
    )
    db.execute("ANALYZE item_pairs")
    seeds = ("item-100", "item-200", "item-300")
    record(*(event("add_to_cart", "shopper", item_id=item) for item in seeds))
    # This transaction's scans: of the table (sequential), and of the index, with the entries they returned.
    scans = (
        "SELECT pg_stat_get_xact_numscans('item_pairs'::regclass),"
        " pg_stat_get_xact_numscans('item_pairs_rank_read_idx'::regclass),"
        " pg_stat_get_xact_tuples_returned('item_pairs_rank_read_idx'::regclass)"
    )

    with db.transaction(force_rollback=True):
        before = db.execute(scans).fetchone()
        pairs = feed_read(db, "shopper").pairs
        after = db.execute(scans).fetchone()

    assert [a - b for a, b in zip(after, before, strict=True)] == [0, len(seeds), len(seeds) * POOL]
    # Each seed item's best POOL, read in full: its paired items k = 1 … POOL places on, scored 1 / k.
    best = {f"item-{n + k}": (f"item-{n}", pytest.approx(1 / k)) for n in (100, 200, 300) for k in range(1, POOL + 1)}
    assert {paired: (seed, score) for paired, score, seed in pairs} == best


def test_a_pair_that_reaches_the_minimum_support_later_appears_and_old_rows_are_rescored(
    db: psycopg.Connection,
) -> None:
    create_catalog(db)
    record(*baskets((("milk", "cereal"), 3), (("milk", "eggs"), 2), at_hours_ago=48))
    recompute_scores(RecomputeRequest(), now=NOW)
    assert pair_lists(db, "milk") == {"milk": ["cereal"]}
    before = pair_rows(db)

    # More milk without cereal lowers milk–cereal; the third milk–eggs basket brings the pair in.
    record(*baskets((("milk", "eggs"), 1), (("milk",), 4)))
    recompute_scores(RecomputeRequest(), now=NOW)

    incremental = pair_rows(db)
    assert set(incremental) == {("milk", "cereal"), ("cereal", "milk"), ("milk", "eggs"), ("eggs", "milk")}
    assert incremental[("cereal", "milk")] < before[("cereal", "milk")]  # a row of an item the run touched
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert pair_rows(db) == pytest.approx(incremental, rel=1e-9)


def test_each_item_keeps_its_top_k_pairs(db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_PAIRS_TOP_K", "1")
    monkeypatch.setenv("SCORING_PAIRS_MIN_SUPPORT", "1")
    settings.scoring_settings.cache_clear()
    create_catalog(db)
    record(*baskets((("milk", "cereal"), 3), (("milk", "eggs"), 1), (("eggs",), 1)))
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert set(pair_rows(db)) == {("milk", "cereal"), ("cereal", "milk"), ("eggs", "milk")}

    # Eggs overtake cereal in milk's list: the incremental run prunes the list it grew back to one.
    record(*baskets((("milk", "eggs"), 4)))
    recompute_scores(RecomputeRequest(), now=NOW)
    incremental = pair_rows(db)
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)

    assert set(incremental) == {("milk", "eggs"), ("cereal", "milk"), ("eggs", "milk")}
    assert pair_rows(db) == pytest.approx(incremental, rel=1e-9)


def test_tied_seed_items_and_pairs_go_to_the_smaller_item_id_in_byte_order_whatever_the_plan(
    db: psycopg.Connection, database_url: str
) -> None:
    """Seven items bought in one order tie for the five seed items, as a recent purchase and as history; pairs tie
    at a seed's pool cut, and a pair reached from two seeds with one score has one label. Each tie goes to the
    smaller item id in byte order (upper case before lower), with and without statistics, by hash or by sort."""
    bought = ["i-E", "i-a", "i-C", "i-b", "i-D", "i-c", "i-B"]  # byte order: i-B i-C i-D i-E i-a i-b i-c
    ordered_at = NOW - timedelta(days=3)
    db.execute(
        "INSERT INTO user_item_affinity (user_id, item_id, affinity_raw, purchase_count, purchase_raw,"
        " first_purchased_at, last_purchased_at, last_positive_at, updated_at)"
        " SELECT 'history', item_id, 1, 1, 1, %(at)s, %(at)s, %(at)s, %(at)s FROM unnest(%(items)s::text[]) AS item_id",
        {"items": bought, "at": ordered_at},
    )
    record(purchase("basket", items=tuple(bought), at=NOW - timedelta(hours=1)))
    db.execute(
        "INSERT INTO item_pairs (item_id, paired_item_id, pair_raw, score)"
        " SELECT item_id, 'own' || item_id, 1, 0.9 FROM unnest(%(items)s::text[]) AS item_id"
        " UNION ALL VALUES ('i-B', 'p-b', 1, 0.5), ('i-B', 'p-C', 1, 0.5), ('i-B', 'p-A', 1, 0.5),"
        " ('i-D', 'shared', 1, 0.7), ('i-C', 'shared', 1, 0.7)",
        {"items": bought},
    )
    seeds_of_five = {"owni-B": ("i-B", 0.9), "p-A": ("i-B", 0.5), "owni-C": ("i-C", 0.9), "shared": ("i-C", 0.7),
                     "owni-D": ("i-D", 0.9), "owni-E": ("i-E", 0.9), "owni-a": ("i-a", 0.9)}  # fmt: skip
    expected = {  # (user, buy-again pool): {paired item: (seed, score)}
        ("basket", 200): seeds_of_five,
        ("history", 200): seeds_of_five,
        # the three items bought first by purchase_raw (all 1): the smaller ids
        ("history", 3): {k: v for k, v in seeds_of_five.items() if v[0] in ("i-B", "i-C", "i-D")},
    }

    def goes_well_with(planner: str, reorders: bool) -> dict[tuple[str, int], dict[str, tuple[str, float]]]:
        with psycopg.connect(database_url, autocommit=True, options=planner) as conn:  # plans of its own
            found = {}
            for user, buy_again_pool in expected:
                query = feed_db.UserRowsQuery(
                    user_id=user, models=(), pairs=True, pool=2, buy_again_pool=buy_again_pool,
                    recent_since=NOW - timedelta(days=1), seed_limit=5, reorders=reorders,
                )  # fmt: skip
                pairs = feed_db.user_rows(conn, query).pairs
                found[user, buy_again_pool] = {paired: (seed, score) for paired, score, seed in pairs}
            return found

    for analyzed in (False, True):
        if analyzed:
            db.execute("ANALYZE user_item_affinity, item_pairs, events")
        for planner in ("-c enable_hashagg=on", "-c enable_hashagg=off -c enable_incremental_sort=off"):
            for reorders in (True, False):  # feed_user_item_rows_with_reorders, feed_user_item_rows
                assert goes_well_with(planner, reorders) == expected, (analyzed, planner, reorders)


def use_pair_settings(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"SCORING_PAIRS_{name.upper()}", value)
    settings.scoring_settings.cache_clear()


def test_an_items_rows_are_rescored_once_its_baskets_grew_past_the_bound_and_a_list_that_gets_rows_in_full(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pair_settings(monkeypatch, min_support="1")
    assert settings.scoring_settings().pairs_rescore_bound == 0.1  # the default
    create_catalog(db)
    record(*baskets((("eggs", "milk"), 1), (("milk",), 29)))  # every basket at one moment: each weighs the same
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)  # milk in 30 baskets, eggs in 1
    assert pair_rows(db) == pytest.approx({("eggs", "milk"): 1 / math.sqrt(30), ("milk", "eggs"): 1 / math.sqrt(30)})

    # Milk in 31 baskets (+3 %): neither its list nor the rows naming it are rescored; at most sqrt(1.1) too high.
    record(*baskets((("milk",), 1)))
    recompute_scores(RecomputeRequest(), now=NOW)
    assert pair_rows(db) == pytest.approx({("eggs", "milk"): 1 / math.sqrt(30), ("milk", "eggs"): 1 / math.sqrt(30)})

    # 32 baskets, one with coffee: milk's list gets a row and is rescored in full; eggs' row naming milk is not.
    record(*baskets((("coffee", "milk"), 1)))
    recompute_scores(RecomputeRequest(), now=NOW)
    assert pair_rows(db) == pytest.approx({
        ("eggs", "milk"): 1 / math.sqrt(30), ("milk", "eggs"): 1 / math.sqrt(32),
        ("coffee", "milk"): 1 / math.sqrt(32), ("milk", "coffee"): 1 / math.sqrt(32),
    })  # fmt: skip

    # 34 baskets, 13 % over the 30 milk's rows were last all rescored at: every row of milk's is.
    record(*baskets((("milk",), 2)))
    recompute_scores(RecomputeRequest(), now=NOW)
    incremental = pair_rows(db)
    assert incremental == pytest.approx({
        ("eggs", "milk"): 1 / math.sqrt(34), ("milk", "eggs"): 1 / math.sqrt(34),
        ("coffee", "milk"): 1 / math.sqrt(34), ("milk", "coffee"): 1 / math.sqrt(34),
    })  # fmt: skip
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    assert pair_rows(db) == pytest.approx(incremental, rel=1e-9)


def test_an_item_marked_before_migration_0101_has_the_rows_naming_it_rescored_at_its_next_run(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items counted before migration 0101, or by code from before it, carry no mark (0): the next run that touches
    one rescores its rows, as that code did on every run."""
    use_pair_settings(monkeypatch, min_support="1")
    create_catalog(db)
    record(*baskets((("eggs", "milk"), 1), (("milk",), 19)))
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    db.execute("UPDATE item_baskets SET rescored_basket_raw = 0")

    record(*baskets((("milk",), 1)))
    recompute_scores(RecomputeRequest(), now=NOW)

    assert pair_rows(db) == pytest.approx({("eggs", "milk"): 1 / math.sqrt(21), ("milk", "eggs"): 1 / math.sqrt(21)})
    marked = db.execute("SELECT rescored_basket_raw = basket_raw FROM item_baskets WHERE item_id = 'milk'").fetchone()
    assert marked == (True,)


@pytest.mark.parametrize("bound", ["0", "0.1"])
def test_incremental_pair_scores_are_within_the_bound_of_a_full_rebuild_and_exact_at_0(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """Random baskets of five items over eight runs: every row an incremental run left is at most (1 + bound) times
    the full rebuild's score, never below it, and the lists hold the same pairs."""
    use_pair_settings(monkeypatch, min_support="1", rescore_bound=bound)
    create_catalog(db)
    items = ("milk", "eggs", "coffee", "bananas", "wine")
    rng = random.Random(7)

    def random_baskets(count: int) -> list[tuple[tuple[str, ...], int]]:
        return [(tuple(rng.sample(items, rng.randint(1, 3))), 1) for _ in range(count)]

    record(*baskets(*random_baskets(30)))
    for _ in range(8):
        recompute_scores(RecomputeRequest(), now=NOW)
        record(*baskets(*random_baskets(3)))
    recompute_scores(RecomputeRequest(), now=NOW)
    incremental = pair_rows(db)
    recompute_scores(RecomputeRequest(mode="full"), now=NOW)
    full = pair_rows(db)

    assert incremental.keys() == full.keys()
    over = [incremental[pair] / full[pair] for pair in full]
    if bound == "0":
        assert over == pytest.approx([1.0] * len(over), rel=1e-9)
    else:
        assert all(1 - 1e-9 <= ratio <= 1.1 + 1e-9 for ratio in over)
        assert max(over) > 1 + 1e-6  # some rows were left for a later run
