"""Read path of the feed: candidates of every section, hydrated with catalog and store data, in one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.rows import class_row

# Each source reads its score table by index and keeps only items active in the catalog and available at
# the store before taking its best rows (filtering after the LIMIT would starve sections); the store's
# shelf price wins over the catalog price.
_FEED_CANDIDATES = """
WITH buy_again AS (
    SELECT a.item_id, a.purchase_raw AS raw_score, a.purchase_count, a.first_purchased_at, a.last_purchased_at
    FROM user_item_affinity a
    JOIN items i ON i.item_id = a.item_id AND i.active
    JOIN store_availability sa ON sa.store_id = %(store_id)s AND sa.item_id = a.item_id AND sa.available
    WHERE a.user_id = %(user_id)s AND a.purchase_count > 0 AND NOT a.hidden
    ORDER BY a.purchase_raw DESC
    LIMIT %(buy_again_pool)s
),
trending AS (
    SELECT p.item_id, p.trending_score AS raw_score
    FROM item_popularity p
    JOIN items i ON i.item_id = p.item_id AND i.active
    JOIN store_availability sa ON sa.store_id = p.store_id AND sa.item_id = p.item_id AND sa.available
    WHERE p.store_id = %(store_id)s
      AND NOT EXISTS (
          SELECT 1 FROM user_item_affinity h
          WHERE h.user_id = %(user_id)s AND h.item_id = p.item_id AND h.hidden
      )
    ORDER BY p.trending_score DESC
    LIMIT %(per_source)s
),
candidates AS (
    SELECT 'buy_again' AS source, item_id, raw_score, purchase_count, first_purchased_at, last_purchased_at
    FROM buy_again
    UNION ALL
    SELECT 'trending', item_id, raw_score, NULL, NULL, NULL FROM trending
)
SELECT c.source, c.item_id, c.raw_score, (SELECT epoch FROM score_state) AS epoch,
       c.purchase_count, c.first_purchased_at, c.last_purchased_at,
       i.name, i.brand, i.department, i.aisle, coalesce(sa.price, i.price) AS price
FROM candidates c
JOIN items i ON i.item_id = c.item_id
JOIN store_availability sa ON sa.store_id = %(store_id)s AND sa.item_id = c.item_id
ORDER BY c.source, c.raw_score DESC, c.item_id
"""


@dataclass(frozen=True)
class FeedCandidate:
    """An item a source proposes, hydrated with catalog and store data.

    `raw_score` is the source's stored score, comparable within a source only: for buy-again the decayed
    purchase frequency, epoch-relative (see the scoring migration); for trending the trending ratio.
    Buy-again candidates carry the user's purchase history of the item.
    """

    source: str
    item_id: str
    raw_score: float
    epoch: datetime
    purchase_count: int | None
    first_purchased_at: datetime | None
    last_purchased_at: datetime | None
    name: str
    brand: str | None
    department: str
    aisle: str
    price: Decimal


def feed_candidates(
    conn: psycopg.Connection, user_id: str, store_id: str, per_source: int, buy_again_pool: int
) -> list[FeedCandidate]:
    """The best `per_source` trending candidates and up to `buy_again_pool` of the user's purchased items
    (by decayed purchase frequency), all active and available at the store."""
    with conn.cursor(row_factory=class_row(FeedCandidate)) as cur:
        cur.execute(
            _FEED_CANDIDATES,
            {"user_id": user_id, "store_id": store_id, "per_source": per_source, "buy_again_pool": buy_again_pool},
        )
        return cur.fetchall()
