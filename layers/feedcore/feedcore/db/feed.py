"""Read path of the feed: every source's candidates, hydrated, in one query; feed snapshots for paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

# The feed's read query is the function feed_candidates (see its migration): planned once per session.
_FEED_CANDIDATES = """
SELECT * FROM feed_candidates(
    %(user_id)s, %(store_id)s, %(sources)s, %(models)s, %(pool)s, %(buy_again_pool)s, %(favourite_aisles)s,
    %(new_since)s, %(recent_since)s, %(recent_limit)s, %(seed_limit)s)
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
    """An item a source proposes, with every fact the filters and the scoring read (fields in the order of
    the columns feed_candidates returns).

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
        "sources": sorted(query.sources),
    }
    # Rows come in the order of Candidate's fields; positional construction is the cheap way to build them.
    with conn.cursor(binary=True) as cursor:  # binary rows: no text parsing of timestamps and numbers
        return [Candidate(*row) for row in cursor.execute(_FEED_CANDIDATES, params).fetchall()]


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


def delete_user_feeds(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's feed records and snapshots; returns how many feeds."""
    conn.execute("DELETE FROM feed_snapshots WHERE user_id = %s", (user_id,))
    return conn.execute("DELETE FROM feeds WHERE user_id = %s", (user_id,)).rowcount


def delete_feeds_before(conn: psycopg.Connection, cutoff: datetime) -> int:
    """Delete the feed records (kept for attribution) created before `cutoff`; returns how many."""
    return conn.execute("DELETE FROM feeds WHERE created_at < %s", (cutoff,)).rowcount


def delete_expired_snapshots(conn: psycopg.Connection, now: datetime) -> int:
    """Drop the snapshots past their expiry; returns how many."""
    return conn.execute("DELETE FROM feed_snapshots WHERE expires_at <= %s", (now,)).rowcount
