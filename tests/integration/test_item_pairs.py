"""'Bought together' item pairs from purchase baskets, as the recompute maintains them, against the real database."""

from __future__ import annotations

import math
from datetime import timedelta

import psycopg
import pytest

from feedcore import settings
from feedcore.scoring.service import RecomputeRequest, recompute_scores
from tests.factories import NOW, create_catalog, purchase, record

# The feed's read of the contract: the pairs of several seed items, best first.
FEED_READ = "SELECT item_id, paired_item_id, score FROM item_pairs WHERE item_id = ANY(%s) ORDER BY score DESC"


def pair_lists(conn: psycopg.Connection, *items: str) -> dict[str, list[str]]:
    """Each seed item's paired items, best first, as the feed reads them."""
    lists: dict[str, list[str]] = {item: [] for item in items}
    for item_id, paired_item_id, _ in conn.execute(FEED_READ, (list(items),)):
        lists[item_id].append(paired_item_id)
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


def test_the_feed_reads_the_lists_by_the_score_index(db: psycopg.Connection) -> None:
    indexes = [row[0] for row in db.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'item_pairs'")]
    assert any(definition.endswith("(item_id, score DESC)") for definition in indexes)

    # The table is empty here: ask for the plan of a large one, where the planner avoids reading whole lists.
    db.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
    plan = "\n".join(
        row[0]
        for row in db.execute(
            "EXPLAIN SELECT p.* FROM unnest(%s::text[]) AS seed (item_id) "
            "CROSS JOIN LATERAL (SELECT * FROM item_pairs WHERE item_id = seed.item_id ORDER BY score DESC LIMIT 10) p",
            (["milk", "eggs"],),
        )
    )
    # The paired items join the catalog by its primary key (a collation of their own would prevent it).
    catalog_plan = "\n".join(
        row[0]
        for row in db.execute(
            "EXPLAIN SELECT i.* FROM item_pairs p JOIN items i ON i.item_id = p.paired_item_id WHERE p.item_id = 'milk'"
        )
    )
    db.execute("RESET enable_seqscan; RESET enable_bitmapscan")
    assert "item_pairs_rank_idx" in plan and "Sort" not in plan
    assert "items_pkey" in catalog_plan


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
