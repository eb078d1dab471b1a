"""Score tables: set-based recomputation from the event log, and the run history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from feedcore.settings import ScoringSettings

# Held for the length of a recompute transaction so two runs never overlap.
RECOMPUTE_LOCK_KEY = 7_246_201_118

# Each interaction with its type weight and its age at %(now)s. Impressions carry no preference, and
# removals from the cart are not scored yet; events stamped after `now` are left for a later run.
_WEIGHTED_INTERACTIONS = """
SELECT user_id, store_id, item_id, event_id, event_type, occurred_at,
       CASE event_type
           WHEN 'purchase' THEN %(purchase_weight)s
           WHEN 'add_to_cart' THEN %(add_to_cart_weight)s
           WHEN 'click' THEN %(click_weight)s
           ELSE 0
       END AS weight,
       extract(epoch FROM (%(now)s - occurred_at)) AS age_s
FROM event_items
WHERE occurred_at <= %(now)s AND event_type NOT IN ('impression', 'remove_from_cart')
"""


def _decay(half_life_param: str) -> str:
    """SQL for 2^(-age / half-life), floored at e^-700 so that ancient events weigh ~0 instead of raising
    PostgreSQL's underflow error."""
    return f"exp(greatest(-ln(2) * age_s / %({half_life_param})s, -700))"


_REBUILD_POPULARITY = f"""
INSERT INTO item_popularity (store_id, item_id, score, updated_at)
SELECT coalesce(store_id, '*'), item_id,
       sum(weight * {_decay("popularity_half_life_s")}),
       %(now)s
FROM ({_WEIGHTED_INTERACTIONS}) AS interaction
WHERE weight > 0
GROUP BY GROUPING SETS ((store_id, item_id), (item_id))
"""

# A hide suppresses an item until the user buys or carts it again later.
_REBUILD_AFFINITY = f"""
INSERT INTO user_item_affinity (user_id, item_id, affinity, purchase_count, last_purchased_at,
                                buy_again_score, hidden, updated_at)
SELECT user_id, item_id,
       coalesce(sum(weight * {_decay("affinity_half_life_s")}), 0),
       count(DISTINCT event_id) FILTER (WHERE event_type = 'purchase'),
       max(occurred_at) FILTER (WHERE event_type = 'purchase'),
       coalesce(sum({_decay("affinity_half_life_s")}) FILTER (WHERE event_type = 'purchase'), 0),
       coalesce(
           max(occurred_at) FILTER (WHERE event_type = 'hide')
               >= coalesce(max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')), '-infinity'),
           false),
       %(now)s
FROM ({_WEIGHTED_INTERACTIONS}) AS interaction
GROUP BY user_id, item_id
"""


# Users seen in events get a profile, their home store being where they have most events. Kept out of the
# ingestion path, whose cost it would double.
_ADD_NEW_USERS = """
INSERT INTO users (user_id, home_store_id)
SELECT DISTINCT ON (user_id) user_id, store_id
FROM events
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = events.user_id)
GROUP BY user_id, store_id
ORDER BY user_id, count(*) DESC, store_id
ON CONFLICT (user_id) DO NOTHING
"""


@dataclass(frozen=True)
class RecomputeCounts:
    events_scored: int
    popularity_rows: int
    affinity_rows: int


def try_lock_recompute(conn: psycopg.Connection, timeout_ms: int) -> bool:
    """Take the recompute lock for the current transaction and bound the transaction's statements and idle
    time by `timeout_ms`; False when another run holds the lock."""
    conn.execute(
        """
        SELECT set_config('statement_timeout', %(timeout)s, true),
               set_config('idle_in_transaction_session_timeout', %(timeout)s, true)
        """,
        {"timeout": str(timeout_ms)},
    )
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def rebuild_scores(conn: psycopg.Connection, settings: ScoringSettings, now: datetime) -> RecomputeCounts:
    """Replace item popularity and user-item affinity with values computed from every event up to `now`.

    Runs inside the caller's transaction, so readers see the old scores until it commits.
    """
    params = {
        "now": now,
        "purchase_weight": settings.purchase_weight,
        "add_to_cart_weight": settings.add_to_cart_weight,
        "click_weight": settings.click_weight,
        "popularity_half_life_s": settings.popularity_half_life_days * 86_400,
        "affinity_half_life_s": settings.affinity_half_life_days * 86_400,
    }
    events_scored = conn.execute("SELECT count(*) FROM events WHERE occurred_at <= %(now)s", params).fetchone()[0]
    conn.execute(_ADD_NEW_USERS)
    conn.execute("DELETE FROM item_popularity")
    popularity_rows = conn.execute(_REBUILD_POPULARITY, params).rowcount
    conn.execute("DELETE FROM user_item_affinity")
    affinity_rows = conn.execute(_REBUILD_AFFINITY, params).rowcount
    return RecomputeCounts(events_scored, popularity_rows, affinity_rows)


def record_run(
    conn: psycopg.Connection, mode: str, started_at: datetime, finished_at: datetime, counts: RecomputeCounts
) -> int:
    """Append a row to score_runs; returns its run_id."""
    row = conn.execute(
        """
        INSERT INTO score_runs (mode, started_at, finished_at, events_scored, popularity_rows, affinity_rows)
        VALUES (%s, %s, %s, %s, %s, %s)
        RETURNING run_id
        """,
        (mode, started_at, finished_at, counts.events_scored, counts.popularity_rows, counts.affinity_rows),
    ).fetchone()
    return row[0]


def delete_user_scores(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's per-user scores; returns how many rows."""
    return conn.execute("DELETE FROM user_item_affinity WHERE user_id = %s", (user_id,)).rowcount
