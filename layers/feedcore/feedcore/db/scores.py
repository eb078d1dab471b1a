"""Score tables: incremental (and full) recomputation from the event log, in set-based SQL.

See infra/migrations/0003_incremental_scores.sql for the watermark and the epoch-relative decay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from feedcore.settings import ScoringSettings

# Held for the length of a recompute transaction so two runs never work at once.
RECOMPUTE_LOCK_KEY = 7_246_201_118
# How far back of a run's start the next run's received_at scan begins. An ingest transaction stamps its
# rows with its start time and has a 2 s statement timeout, so this is generous.
SCAN_MARGIN = timedelta(hours=1)


def _grow(half_life: str) -> str:
    """SQL for 2^((occurred_at − epoch) / half-life), from `t_s` (seconds since the epoch); floored so that
    ancient events weigh ~0 instead of raising PostgreSQL's underflow error."""
    return f"exp(greatest(ln(2) * t_s / %({half_life})s, -700))"


# The events of one run, each (event, item) once, with its type weight and its time since the epoch.
_RUN_EVENTS = """
SELECT user_id, store_id, item_id, event_id, event_type, occurred_at,
       CASE event_type
           WHEN 'purchase' THEN %(purchase_weight)s
           WHEN 'add_to_cart' THEN %(add_to_cart_weight)s
           WHEN 'click' THEN %(click_weight)s
           ELSE 0
       END AS weight,
       extract(epoch FROM occurred_at - %(epoch)s) AS t_s
FROM event_items
WHERE received_at >= %(scan_from)s AND insert_xid >= %(xid_from)s AND insert_xid < %(xid_to)s
  AND event_type IN ('purchase', 'add_to_cart', 'click', 'hide')
"""

# One statement: the run's events are read once and added into every score table.
_APPLY_EVENTS = f"""
WITH run_event AS MATERIALIZED ({_RUN_EVENTS}),
popularity AS (
    INSERT INTO item_popularity AS p (store_id, item_id, raw_score, updated_at)
    SELECT coalesce(store_id, '*'), item_id, sum(weight * {_grow("popularity_half_life_s")}), %(now)s
    FROM run_event
    WHERE weight > 0
    GROUP BY GROUPING SETS ((store_id, item_id), (item_id))
    ON CONFLICT (store_id, item_id) DO UPDATE
        SET raw_score = p.raw_score + excluded.raw_score, updated_at = excluded.updated_at
    RETURNING 1
),
affinity AS (
    INSERT INTO user_item_affinity AS a (user_id, item_id, affinity_raw, purchase_count, purchase_raw,
                                         first_purchased_at, last_purchased_at, last_positive_at,
                                         last_hidden_at, updated_at)
    SELECT user_id, item_id,
           coalesce(sum(weight * {_grow("affinity_half_life_s")}) FILTER (WHERE weight > 0), 0),
           count(*) FILTER (WHERE event_type = 'purchase'),
           coalesce(sum({_grow("buy_again_half_life_s")}) FILTER (WHERE event_type = 'purchase'), 0),
           min(occurred_at) FILTER (WHERE event_type = 'purchase'),
           max(occurred_at) FILTER (WHERE event_type = 'purchase'),
           max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')),
           max(occurred_at) FILTER (WHERE event_type = 'hide'),
           %(now)s
    FROM run_event
    GROUP BY user_id, item_id
    ON CONFLICT (user_id, item_id) DO UPDATE SET
        affinity_raw = a.affinity_raw + excluded.affinity_raw,
        purchase_count = a.purchase_count + excluded.purchase_count,
        purchase_raw = a.purchase_raw + excluded.purchase_raw,
        first_purchased_at = least(a.first_purchased_at, excluded.first_purchased_at),
        last_purchased_at = greatest(a.last_purchased_at, excluded.last_purchased_at),
        last_positive_at = greatest(a.last_positive_at, excluded.last_positive_at),
        last_hidden_at = greatest(a.last_hidden_at, excluded.last_hidden_at),
        updated_at = excluded.updated_at
    RETURNING 1
),
category AS (
    INSERT INTO user_category_affinity AS c (user_id, level, category, raw_score, updated_at)
    SELECT e.user_id, cat.level, cat.category, sum(e.weight * {_grow("affinity_half_life_s")}), %(now)s
    FROM run_event e
    JOIN items i ON i.item_id = e.item_id
    CROSS JOIN LATERAL (VALUES ('aisle', i.aisle), ('department', i.department)) AS cat (level, category)
    WHERE e.weight > 0
    GROUP BY e.user_id, cat.level, cat.category
    ON CONFLICT (user_id, level, category) DO UPDATE
        SET raw_score = c.raw_score + excluded.raw_score, updated_at = excluded.updated_at
    RETURNING 1
),
new_user AS (
    -- A user's home store is where they have most events.
    INSERT INTO users (user_id, home_store_id)
    SELECT DISTINCT ON (user_id) user_id, store_id
    FROM run_event
    GROUP BY user_id, store_id
    ORDER BY user_id, count(*) DESC, store_id
    ON CONFLICT (user_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(DISTINCT event_id) FROM run_event),
       (SELECT count(*) FROM popularity),
       (SELECT count(*) FROM affinity),
       (SELECT count(*) FROM category)
"""

SCORE_TABLES = ("item_popularity", "user_item_affinity", "user_category_affinity")


@dataclass(frozen=True)
class ScoreState:
    epoch: datetime
    xid_watermark: str
    scanned_from: datetime


@dataclass(frozen=True)
class Chunk:
    """The events one transaction scores: insert_xid in [xid_from, xid_to), received since scan_from."""

    xid_from: str
    xid_to: str
    scan_from: datetime
    complete: bool  # True when it reaches the snapshot: nothing older is left


@dataclass(frozen=True)
class ApplyCounts:
    events_scored: int
    popularity_updates: int
    affinity_updates: int
    category_updates: int


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


def load_state(conn: psycopg.Connection) -> ScoreState | None:
    row = conn.execute("SELECT epoch, xid_watermark::text, scanned_from FROM score_state FOR UPDATE").fetchone()
    return ScoreState(*row) if row else None


def save_state(conn: psycopg.Connection, state: ScoreState, now: datetime) -> None:
    conn.execute(
        """
        INSERT INTO score_state (epoch, xid_watermark, scanned_from, updated_at)
        VALUES (%s, %s::xid8, %s, %s)
        ON CONFLICT (singleton) DO UPDATE SET epoch = excluded.epoch, xid_watermark = excluded.xid_watermark,
            scanned_from = excluded.scanned_from, updated_at = excluded.updated_at
        """,
        (state.epoch, state.xid_watermark, state.scanned_from, now),
    )


def snapshot_xmin(conn: psycopg.Connection) -> tuple[str, datetime]:
    """The snapshot's xmin — every transaction below it has ended, so its events, if committed, are
    visible from now on — and the database's clock."""
    row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text, statement_timestamp()").fetchone()
    return row[0], row[1]


def next_chunk(conn: psycopg.Connection, state: ScoreState, xmin: str, max_events: int) -> Chunk:
    """The pending events up to `xmin`, cut at a transaction boundary after about `max_events` events."""
    row = conn.execute(
        """
        SELECT insert_xid::text FROM events
        WHERE received_at >= %s AND insert_xid >= %s::xid8 AND insert_xid < %s::xid8
        ORDER BY insert_xid OFFSET %s LIMIT 1
        """,
        (state.scanned_from, state.xid_watermark, xmin, max_events),
    ).fetchone()
    if row is None:
        return Chunk(state.xid_watermark, xmin, state.scanned_from, complete=True)
    cut = row[0] if int(row[0]) > int(state.xid_watermark) else str(int(row[0]) + 1)  # one huge transaction
    return Chunk(state.xid_watermark, cut, state.scanned_from, complete=False)


def apply_events(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime
) -> ApplyCounts:
    """Add the chunk's events into every score table."""
    row = conn.execute(
        _APPLY_EVENTS,
        {
            "now": now,
            "epoch": epoch,
            "scan_from": chunk.scan_from,
            "xid_from": chunk.xid_from,
            "xid_to": chunk.xid_to,
            "purchase_weight": settings.purchase_weight,
            "add_to_cart_weight": settings.add_to_cart_weight,
            "click_weight": settings.click_weight,
            "popularity_half_life_s": settings.popularity_half_life_days * 86_400,
            "affinity_half_life_s": settings.affinity_half_life_days * 86_400,
            "buy_again_half_life_s": settings.buy_again_half_life_days * 86_400,
        },
    ).fetchone()
    return ApplyCounts(*row)


def clear_scores(conn: psycopg.Connection) -> None:
    """Empty the score tables (full rebuild); readers keep seeing the old scores until the commit."""
    for table in SCORE_TABLES:
        conn.execute(f"DELETE FROM {table}")


def rebase(conn: psycopg.Connection, settings: ScoringSettings, old_epoch: datetime, new_epoch: datetime) -> None:
    """Move every raw score to a later epoch (keeps the exponents small); decayed values do not change."""
    shift_s = (new_epoch - old_epoch).total_seconds()

    def factor(half_life_days: float) -> float:
        return 2 ** (-shift_s / (half_life_days * 86_400))

    pop, aff, buy = (factor(settings.popularity_half_life_days), factor(settings.affinity_half_life_days),
                     factor(settings.buy_again_half_life_days))  # fmt: skip
    conn.execute("UPDATE item_popularity SET raw_score = raw_score * %s", (pop,))
    conn.execute(
        "UPDATE user_item_affinity SET affinity_raw = affinity_raw * %s, purchase_raw = purchase_raw * %s",
        (aff, buy),
    )
    conn.execute("UPDATE user_category_affinity SET raw_score = raw_score * %s", (aff,))


def record_run(
    conn: psycopg.Connection, mode: str, started_at: datetime, finished_at: datetime, chunk: Chunk,
    counts: ApplyCounts,
) -> int:  # fmt: skip
    """Append a row to score_runs; returns its run_id."""
    row = conn.execute(
        """
        INSERT INTO score_runs (mode, started_at, finished_at, events_scored, popularity_updates,
                                affinity_updates, events_from, events_to)
        VALUES (%s, %s, %s, %s, %s, %s, %s::xid8, %s::xid8)
        RETURNING run_id
        """,
        (mode, started_at, finished_at, counts.events_scored, counts.popularity_updates, counts.affinity_updates,
         chunk.xid_from, chunk.xid_to),
    ).fetchone()  # fmt: skip
    return row[0]


def delete_user_scores(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's per-user scores; returns how many rows."""
    deleted = conn.execute("DELETE FROM user_item_affinity WHERE user_id = %s", (user_id,)).rowcount
    return deleted + conn.execute("DELETE FROM user_category_affinity WHERE user_id = %s", (user_id,)).rowcount
