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
    SELECT a.item_id, a.buy_again_score AS score, a.purchase_count, a.last_purchased_at
    FROM user_item_affinity a
    JOIN items i ON i.item_id = a.item_id AND i.active
    JOIN store_availability sa ON sa.store_id = %(store_id)s AND sa.item_id = a.item_id AND sa.available
    WHERE a.user_id = %(user_id)s AND a.purchase_count > 0 AND NOT a.hidden
    ORDER BY a.buy_again_score DESC
    LIMIT %(per_source)s
),
trending AS (
    SELECT p.item_id, p.score
    FROM item_popularity p
    JOIN items i ON i.item_id = p.item_id AND i.active
    JOIN store_availability sa ON sa.store_id = p.store_id AND sa.item_id = p.item_id AND sa.available
    WHERE p.store_id = %(store_id)s
      AND NOT EXISTS (
          SELECT 1 FROM user_item_affinity h
          WHERE h.user_id = %(user_id)s AND h.item_id = p.item_id AND h.hidden
      )
    ORDER BY p.score DESC
    LIMIT %(per_source)s
),
candidates AS (
    SELECT 'buy_again' AS source, item_id, score, purchase_count, last_purchased_at FROM buy_again
    UNION ALL
    SELECT 'trending', item_id, score, NULL, NULL FROM trending
)
SELECT c.source, c.item_id, c.score, c.purchase_count, c.last_purchased_at,
       i.name, i.brand, i.department, i.aisle, coalesce(sa.price, i.price) AS price
FROM candidates c
JOIN items i ON i.item_id = c.item_id
JOIN store_availability sa ON sa.store_id = %(store_id)s AND sa.item_id = c.item_id
ORDER BY c.source, c.score DESC, c.item_id
"""


@dataclass(frozen=True)
class FeedCandidate:
    source: str
    item_id: str
    score: float
    purchase_count: int | None
    last_purchased_at: datetime | None
    name: str
    brand: str | None
    department: str
    aisle: str
    price: Decimal


def feed_candidates(conn: psycopg.Connection, user_id: str, store_id: str, per_source: int) -> list[FeedCandidate]:
    """Up to `per_source` candidates of each source, best first, already filtered to what the store sells."""
    with conn.cursor(row_factory=class_row(FeedCandidate)) as cur:
        cur.execute(_FEED_CANDIDATES, {"user_id": user_id, "store_id": store_id, "per_source": per_source})
        return cur.fetchall()
