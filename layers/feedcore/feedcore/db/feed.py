"""Read path of the feed: every source's candidates, hydrated, in one query; feed snapshots for paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

# One statement, one round trip. Each source reads its table by index and keeps its best `pool` rows
# (a source the config does not use is switched off by its flag, which PostgreSQL checks once). Then each
# distinct item is hydrated once: catalog, the store's availability and price, the user's history of it,
# its popularity, the user's affinity to its aisle, its model score, and the user's events of the last
# hours that scoring has not seen yet (real-time signals). Filters run on these facts afterwards, so that
# each removal can be explained.
_FEED_CANDIDATES = """
WITH scope AS (
    SELECT known AS store_known, CASE WHEN known THEN %(store_id)s ELSE '*' END AS popularity_store
    FROM (SELECT EXISTS (SELECT 1 FROM stores WHERE store_id = %(store_id)s) AS known) s
),
recent AS (
    SELECT e.event_type, e.occurred_at, item.item_id
    FROM (
        SELECT event_type, occurred_at, item_id, line_item_ids
        FROM events
        WHERE user_id = %(user_id)s AND occurred_at >= %(recent_since)s
          AND event_type IN ('add_to_cart', 'remove_from_cart', 'purchase', 'hide')
        ORDER BY occurred_at DESC
        LIMIT %(recent_limit)s
    ) e
    CROSS JOIN LATERAL unnest(coalesce(e.line_item_ids, ARRAY[e.item_id])) AS item (item_id)
),
recent_by_item AS (
    SELECT item_id,
           max(occurred_at) FILTER (WHERE event_type = 'purchase') AS purchased_at,
           max(occurred_at) FILTER (WHERE event_type = 'hide') AS hidden_at,
           max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')) AS positive_at,
           (array_agg(event_type ORDER BY occurred_at DESC))[1] = 'add_to_cart' AS in_cart,
           max(occurred_at) AS last_at
    FROM recent
    GROUP BY item_id
),
purchased AS (
    SELECT a.item_id, a.last_purchased_at
    FROM user_item_affinity a
    WHERE a.user_id = %(user_id)s AND a.purchase_count > 0 AND NOT a.hidden
    ORDER BY a.purchase_raw DESC
    LIMIT %(buy_again_pool)s
),
seeds AS (
    SELECT item_id FROM (
        (SELECT item_id, 0 AS tier, last_at AS at FROM recent_by_item WHERE in_cart OR purchased_at IS NOT NULL
         ORDER BY last_at DESC LIMIT %(seed_limit)s)
        UNION ALL
        (SELECT item_id, 1, last_purchased_at FROM purchased ORDER BY last_purchased_at DESC LIMIT %(seed_limit)s)
    ) s
    WHERE %(want_goes_well_with)s
    GROUP BY item_id
    ORDER BY min(tier), max(at) DESC
    LIMIT %(seed_limit)s
),
top_aisles AS (
    SELECT category AS aisle
    FROM user_category_affinity
    WHERE %(want_favourite_aisles)s AND user_id = %(user_id)s AND level = 'aisle'
    ORDER BY raw_score DESC
    LIMIT %(favourite_aisles)s
),
candidates AS (
    SELECT 'buy_again' AS source, item_id, NULL::double precision AS source_score, NULL::text AS seed_item_id
    FROM purchased WHERE %(want_buy_again)s
    UNION ALL
    (SELECT DISTINCT ON (p.paired_item_id) 'goes_well_with', p.paired_item_id, p.score, p.item_id
     FROM seeds s
     CROSS JOIN LATERAL (
         SELECT item_id, paired_item_id, score FROM item_pairs
         WHERE item_id = s.item_id ORDER BY score DESC LIMIT %(pool)s
     ) p
     ORDER BY p.paired_item_id, p.score DESC)
    UNION ALL
    (SELECT 'trending', p.item_id, p.trending_score, NULL
     FROM scope JOIN item_popularity p ON p.store_id = scope.popularity_store
     WHERE %(want_trending)s AND p.trending_score > 0
     ORDER BY p.trending_score DESC LIMIT %(pool)s)
    UNION ALL
    (SELECT 'popular', p.item_id, p.raw_score, NULL
     FROM scope JOIN item_popularity p ON p.store_id = scope.popularity_store
     WHERE %(want_popular)s
     ORDER BY p.raw_score DESC LIMIT %(pool)s)
    UNION ALL
    SELECT 'favourite_aisles', x.item_id, x.raw_score, NULL
    FROM top_aisles t, scope
    CROSS JOIN LATERAL (
        SELECT i.item_id, p.raw_score
        FROM items i JOIN item_popularity p ON p.store_id = scope.popularity_store AND p.item_id = i.item_id
        WHERE i.aisle = t.aisle AND i.active
        ORDER BY p.raw_score DESC LIMIT %(pool)s
    ) x
    UNION ALL
    (SELECT 'new_arrivals', i.item_id, NULL, NULL
     FROM items i
     WHERE %(want_new_arrivals)s AND i.active AND i.created_at >= %(new_since)s
     ORDER BY i.created_at DESC LIMIT %(pool)s)
    UNION ALL
    SELECT 'model:' || m.model, x.item_id, x.score, NULL
    FROM unnest(%(models)s::text[]) AS m (model)
    CROSS JOIN LATERAL (
        (SELECT item_id, score FROM model_scores
         WHERE model = m.model AND user_id = %(user_id)s ORDER BY score DESC LIMIT %(pool)s)
        UNION ALL
        (SELECT item_id, score FROM model_scores
         WHERE model = m.model AND user_id = '' ORDER BY score DESC LIMIT %(pool)s)
    ) x
),
hydrated AS (
    SELECT c.item_id, i.name, i.brand, i.department, i.aisle, i.tags, i.active, i.created_at,
           CASE WHEN scope.store_known THEN coalesce(sa.available, false) END AS available,
           coalesce(sa.price, i.price) AS price,
           coalesce(a.purchase_count, 0) AS purchase_count, a.first_purchased_at, a.last_purchased_at,
           coalesce(a.purchase_raw, 0) AS purchase_raw, coalesce(a.affinity_raw, 0) AS affinity_raw,
           coalesce(a.hidden, false) AS hidden, a.last_hidden_at,
           coalesce(pop.raw_score, 0) AS popularity_raw, coalesce(pop.trending_score, 0) AS trending_score,
           coalesce(ca.raw_score, 0) AS aisle_affinity_raw,
           (SELECT max(ms.score) FROM model_scores ms
            WHERE ms.model = ANY (%(models)s::text[]) AND ms.user_id IN (%(user_id)s, '') AND ms.item_id = c.item_id
           ) AS model_score,
           r.purchased_at AS recent_purchase_at, r.hidden_at AS recent_hide_at,
           r.positive_at AS recent_positive_at, coalesce(r.in_cart, false) AS in_cart
    FROM (SELECT DISTINCT item_id FROM candidates) c
    CROSS JOIN scope
    JOIN items i ON i.item_id = c.item_id
    LEFT JOIN store_availability sa ON sa.store_id = %(store_id)s AND sa.item_id = c.item_id
    LEFT JOIN user_item_affinity a ON a.user_id = %(user_id)s AND a.item_id = c.item_id
    LEFT JOIN item_popularity pop ON pop.store_id = scope.popularity_store AND pop.item_id = c.item_id
    LEFT JOIN user_category_affinity ca ON ca.user_id = %(user_id)s AND ca.level = 'aisle' AND ca.category = i.aisle
    LEFT JOIN recent_by_item r ON r.item_id = c.item_id
)
SELECT c.source, c.source_score, c.seed_item_id, seed.name AS seed_name, h.*,
       (SELECT epoch FROM score_state) AS epoch, (SELECT store_known FROM scope) AS store_known
FROM candidates c
JOIN hydrated h ON h.item_id = c.item_id
LEFT JOIN items seed ON seed.item_id = c.seed_item_id
ORDER BY c.source, c.item_id
"""

_SAVE_FEED = """
WITH feed AS (
    INSERT INTO feeds (feed_id, user_id, store_id, experiment, variant, fallback, created_at)
    VALUES (%(feed_id)s, %(user_id)s, %(store_id)s, %(experiment)s, %(variant)s, %(fallback)s, %(created_at)s)
)
INSERT INTO feed_snapshots (feed_id, user_id, expires_at, sections)
VALUES (%(feed_id)s, %(user_id)s, %(expires_at)s, %(sections)s)
"""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item a source proposes, with every fact the filters and the scoring read.

    Scores are as stored: epoch-relative raw values (see the scoring migration), comparable between items
    of one request. `available` is None when the store is unknown (no availability to check). The
    `recent_*` and `in_cart` facts come from the user's events of the last hours, scored or not.
    """

    source: str
    source_score: float | None
    seed_item_id: str | None
    seed_name: str | None
    item_id: str
    name: str
    brand: str | None
    department: str
    aisle: str
    tags: list[str]
    active: bool
    created_at: datetime
    available: bool | None
    price: Decimal
    purchase_count: int
    first_purchased_at: datetime | None
    last_purchased_at: datetime | None
    purchase_raw: float
    affinity_raw: float
    hidden: bool
    last_hidden_at: datetime | None
    popularity_raw: float
    trending_score: float
    aisle_affinity_raw: float
    model_score: float | None
    recent_purchase_at: datetime | None
    recent_hide_at: datetime | None
    recent_positive_at: datetime | None
    in_cart: bool
    epoch: datetime | None
    store_known: bool


@dataclass(frozen=True)
class CandidateQuery:
    """What the feed's read query needs: who and where, the sources wanted and how many rows of each."""

    user_id: str
    store_id: str
    sources: frozenset[str]
    models: tuple[str, ...]
    pool: int
    buy_again_pool: int
    favourite_aisles: int
    new_since: datetime
    recent_since: datetime
    recent_limit: int = 100
    seed_limit: int = 5


def feed_candidates(conn: psycopg.Connection, query: CandidateQuery) -> list[Candidate]:
    """Every candidate of the wanted sources, one row per (source, item), hydrated."""
    params = {
        "user_id": query.user_id,
        "store_id": query.store_id,
        "models": list(query.models),
        "pool": query.pool,
        "buy_again_pool": query.buy_again_pool,
        "favourite_aisles": query.favourite_aisles,
        "new_since": query.new_since,
        "recent_since": query.recent_since,
        "recent_limit": query.recent_limit,
        "seed_limit": query.seed_limit,
        **{
            f"want_{source}": source in query.sources
            for source in ("buy_again", "goes_well_with", "trending", "popular", "favourite_aisles", "new_arrivals")
        },
    }
    with conn.cursor(row_factory=class_row(Candidate)) as cur:
        return cur.execute(_FEED_CANDIDATES, params).fetchall()


@dataclass(frozen=True)
class FeedRecord:
    """An assembled feed as attribution needs it."""

    feed_id: str
    user_id: str
    store_id: str
    experiment: str | None
    variant: str
    fallback: str | None
    created_at: datetime


def save_feed(conn: psycopg.Connection, feed: FeedRecord, sections: list[dict], expires_at: datetime) -> None:
    """Record the feed and keep its ranked sections until `expires_at` for its later pages (one statement)."""
    conn.execute(
        _SAVE_FEED,
        {**feed.__dict__, "expires_at": expires_at, "sections": Jsonb(sections)},
    )


def feed_snapshot(conn: psycopg.Connection, feed_id: str, user_id: str, now: datetime) -> list[dict] | None:
    """The ranked sections of the user's feed `feed_id`, or None when it expired (or never existed)."""
    row = conn.execute(
        "SELECT sections FROM feed_snapshots WHERE feed_id = %s AND user_id = %s AND expires_at > %s",
        (feed_id, user_id, now),
    ).fetchone()
    return row[0] if row else None


def delete_expired_snapshots(conn: psycopg.Connection, now: datetime) -> int:
    """Drop the snapshots past their expiry; returns how many."""
    return conn.execute("DELETE FROM feed_snapshots WHERE expires_at <= %s", (now,)).rowcount
