"""Score tables: incremental (and full) recomputation from the event log, in set-based SQL.

See infra/migrations/0003_incremental_scores.sql for the watermark and the epoch-relative decay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from feedcore.db.connection import bound_transaction, wait_for_lock
from feedcore.db.orders import (
    ITEM_REORDERS_TABLE,
    ORDERS_HOLDING_ITEM,
    USER_ORDERS_TABLE,
    item_reorders_cte,
    rebuilt_item_reorders_sql,
    user_orders_cte,
)
from feedcore.settings import ScoringSettings

# Held for the length of a recompute transaction so two runs never work at once.
RECOMPUTE_LOCK_KEY = 7_246_201_118
# The received_at scan of the next run starts this much before the oldest transaction open at the snapshot
# (an event is stamped with its transaction's start; the margin covers clock reads and sessions whose start
# pg_stat_activity does not show — ingest transactions last well under a second).
SCAN_MARGIN = timedelta(minutes=10)
# Suffix of the fresh copies of the score tables a full rebuild fills before swapping them in.
REBUILD_SUFFIX = "_rebuild"
# Items per store at the top of the trending list (as last packed) whose score every run refreshes.
TRENDING_KEPT_FRESH = 200
# The scored snapshot before the first run (and a rebuild's): no transaction id is visible in it.
EMPTY_SNAPSHOT = "1:1:"
# The bounds of every transaction id (xid8).
FIRST_XID, LAST_XID = "0", "18446744073709551615"


def _grow(half_life: str) -> str:
    """SQL for 2^((occurred_at − epoch) / half-life), from `t_s` (seconds since the epoch); clamped so that
    ancient events weigh ~0 instead of raising PostgreSQL's underflow error (ScoringSettings keeps the
    upper side far from the clamp)."""
    return f"exp(least(greatest(ln(2) * t_s / %({half_life})s, -700), 700))"


def _decay(value: str, half_life: str) -> str:
    """SQL for `value` · 2^(−age_s / half-life) in log space: a value too small to represent becomes 0 rather
    than raising PostgreSQL's underflow error."""
    return (
        f"CASE WHEN {value} > 0 THEN exp(greatest(ln({value}) - ln(2) * %(age_s)s / %({half_life})s, -700)) ELSE 0 END"
    )


# Events a chunk scores: visible in the target snapshot, not in the scored one, within the chunk's xid range,
# and received since the scan bound (which keeps the scan to recent blocks).
_PENDING = """
received_at >= %(scan_from)s AND insert_xid >= %(xid_from)s AND insert_xid < %(xid_to)s
AND pg_visible_in_snapshot(insert_xid, %(target)s::pg_snapshot)
AND NOT pg_visible_in_snapshot(insert_xid, %(scored)s::pg_snapshot)
"""

# The events of one run, each (event, item) once, with its type weight and its time since the epoch; line_no
# numbers an event's items from 1 (a purchase's lines; one item otherwise), so the run counts its events as
# its lines numbered 1. One scan of the log (the event_items view scans it twice), its lines numbered by unnest's
# ordinality, which the planner expects to give about 10 lines an event. Numbered by generate_series in the select
# list, they were expected to be 1,000 an event: a chunk of 20,000 events looked like 2.4M lines, and the events
# statement hashed every known user to find its new ones rather than probe the users' key for each of its own, a
# cost growing with the history (the recompute bench at 2M users: the statement 1.10-1.12 -> 0.96-0.98 s).
_RUN_EVENTS = f"""
SELECT user_id, store_id, event_type, occurred_at,
       CASE event_type
           WHEN 'purchase' THEN %(purchase_weight)s
           WHEN 'add_to_cart' THEN %(add_to_cart_weight)s
           WHEN 'click' THEN %(click_weight)s
           ELSE 0
       END AS weight,
       date_part('epoch', occurred_at - %(epoch)s) AS t_s,
       line.item_id, line.line_no
FROM events
CROSS JOIN LATERAL unnest(CASE WHEN event_type = 'purchase' THEN line_item_ids ELSE ARRAY[item_id] END)
    WITH ORDINALITY AS line (item_id, line_no)
WHERE {_PENDING}
  AND event_type IN ('purchase', 'add_to_cart', 'click', 'hide')
"""


# Trending: the short-horizon event rate over the long-horizon one plus a prior rate, so that a handful of
# events cannot top the list and items without recent events score 0. Rates are decayed counts as of the
# run (%(age_s)s after the epoch) divided by their mean lifetime (half-life / ln 2), in events per day. Rows a
# run touches get it in the same upsert; each store's current top is refreshed after (it ages without events).
def _trending(short_raw: str, raw_score: str) -> str:
    short_rate = f"{_decay(short_raw, 'trending_half_life_s')} * ln(2) * 86400 / %(trending_half_life_s)s"
    long_rate = f"{_decay(raw_score, 'popularity_half_life_s')} * ln(2) * 86400 / %(popularity_half_life_s)s"
    return f"(({short_rate}) / ({long_rate} + %(prior_per_day)s))"


_POPULARITY_CONFLICT = f"""ON CONFLICT (store_id, item_id) DO UPDATE
    SET raw_score = p.raw_score + excluded.raw_score, short_raw = p.short_raw + excluded.short_raw,
        trending_score = {_trending("(p.short_raw + excluded.short_raw)", "(p.raw_score + excluded.raw_score)")},
        updated_at = excluded.updated_at"""


# The score tables an apply statement writes, by the name of its CTE: item-level ones (the coordinator of a
# fanned-out chunk scores them itself) and per-user ones (which its shards score, each for its users).
ITEM_TARGETS = ("popularity", "reorders")
USER_TARGETS = ("affinity", "new_user", "orders")
# The targets whose rows an apply statement counts (ApplyCounts, after events_scored).
_COUNTED_TARGETS = ("popularity", "affinity")


def user_shard_sql(user_id: str, shard_count: str) -> str:
    """SQL for the shard of a user among `shard_count`: stable, in [0, shard_count)."""
    return f"mod(hashtext({user_id}) & 2147483647, {shard_count})"


# One statement: the run's events are read once and added into every score table (or those of `targets`;
# `sharded`: only the events of the users of %(shard)s among %(shard_count)s). Incremental runs upsert;
# a full rebuild writes plain rows into fresh, unindexed copies of the tables (suffix "_rebuild"), in parts side
# by side (see rebuild_events). Without `count_events` the statement's events_scored is 0.
# Rows are written in the order of the table's primary key, compared byte-wise (for these ids the order of the
# database's C.UTF-8 collation; "C" sorts several times faster): a rebuild lays each user's rows out on a few
# neighbouring pages, so a run's upserts and a feed's reads of a user touch fewer pages (after a checkpoint,
# each page a run touches first costs a full-page image in the WAL), and the index builds find their input
# sorted.
def _apply_sql(
    suffix: str = "", upsert: bool = True, targets: tuple[str, ...] = ITEM_TARGETS + USER_TARGETS,
    sharded: bool = False, count_events: bool = True,
) -> str:  # fmt: skip
    def conflict(clause: str) -> str:
        return clause if upsert else ""

    shard_filter = f"AND {user_shard_sql('user_id', '%(shard_count)s')} = %(shard)s" if sharded else ""
    # An upsert of both tells the reorders who bought an item for the first time (item_reorders_cte).
    reorders_see_affinity = upsert and "affinity" in targets and "reorders" in targets
    affinity_returned = "user_id, item_id, purchase_count" if reorders_see_affinity else "1"
    cte = {
        "popularity": f"""popularity AS (
    INSERT INTO item_popularity{suffix} AS p (store_id, item_id, raw_score, short_raw, trending_score, updated_at)
    SELECT store_id, item_id, raw_score, short_raw, {_trending("short_raw", "raw_score")}, now()
    FROM (
        SELECT coalesce(store_id, '*') AS store_id, item_id,
               sum(weight * {_grow("popularity_half_life_s")}) AS raw_score,
               sum(weight * {_grow("trending_half_life_s")}) AS short_raw
        FROM run_event
        WHERE weight > 0
        GROUP BY GROUPING SETS ((store_id, item_id), (item_id))
    ) AS added
    ORDER BY store_id COLLATE "C", item_id COLLATE "C"
    {conflict(_POPULARITY_CONFLICT)}
    RETURNING 1
)""",
        "affinity": f"""affinity AS (
    INSERT INTO user_item_affinity{suffix} AS a (user_id, item_id, affinity_raw, purchase_count, purchase_raw,
                                         first_purchased_at, last_purchased_at, last_positive_at,
                                         last_hidden_at, updated_at)
    SELECT user_id COLLATE "C", item_id COLLATE "C",
           coalesce(sum(weight * {_grow("affinity_half_life_s")}) FILTER (WHERE weight > 0), 0),
           {ORDERS_HOLDING_ITEM},
           coalesce(sum({_grow("buy_again_half_life_s")}) FILTER (WHERE event_type = 'purchase'), 0),
           min(occurred_at) FILTER (WHERE event_type = 'purchase'),
           max(occurred_at) FILTER (WHERE event_type = 'purchase'),
           max(occurred_at) FILTER (WHERE event_type IN ('purchase', 'add_to_cart')),
           max(occurred_at) FILTER (WHERE event_type = 'hide'),
           %(now)s
    FROM run_event
    GROUP BY 1, 2
    ORDER BY 1, 2
    {
            conflict('''ON CONFLICT (user_id, item_id) DO UPDATE SET
        affinity_raw = a.affinity_raw + excluded.affinity_raw,
        purchase_count = a.purchase_count + excluded.purchase_count,
        purchase_raw = a.purchase_raw + excluded.purchase_raw,
        first_purchased_at = least(a.first_purchased_at, excluded.first_purchased_at),
        last_purchased_at = greatest(a.last_purchased_at, excluded.last_purchased_at),
        last_positive_at = greatest(a.last_positive_at, excluded.last_positive_at),
        last_hidden_at = greatest(a.last_hidden_at, excluded.last_hidden_at),
        updated_at = excluded.updated_at''')
        }
    RETURNING {affinity_returned}
)""",
        "new_user": """new_user AS (
    -- A user's home store is where they have most events.
    INSERT INTO users (user_id, home_store_id)
    SELECT DISTINCT ON (user_id) user_id, store_id
    FROM run_event
    WHERE NOT EXISTS (SELECT FROM users u WHERE u.user_id = run_event.user_id)
    GROUP BY user_id, store_id
    ORDER BY user_id, count(*) DESC, store_id
    ON CONFLICT (user_id) DO NOTHING
    RETURNING 1
)""",
        "orders": user_orders_cte(suffix, upsert),
        "reorders": item_reorders_cte(suffix, upsert, affinity_upserted=reorders_see_affinity),
    }  # in this order: a CTE reads only those before it
    counted = ", ".join(f"(SELECT count(*) FROM {t})" if t in targets else "0" for t in _COUNTED_TARGETS)
    events = "(SELECT count(*) FROM run_event WHERE line_no = 1)" if count_events else "0"
    return f"""
WITH run_event AS MATERIALIZED ({_RUN_EVENTS}{shard_filter}),
{",\n".join(text for target, text in cte.items() if target in targets)}
SELECT {events}, {counted}
"""


_APPLY_EVENTS = _apply_sql()
# A rebuild's two parts that read the events: user × item, orders and new users (on the run's connection; the item
# reorders then from its user × item copy), and popularity (on a connection of its own).
_REBUILD_EVENTS = _apply_sql(suffix=REBUILD_SUFFIX, upsert=False, targets=("affinity", "new_user", "orders"))
_REBUILD_ITEM_REORDERS = rebuilt_item_reorders_sql(REBUILD_SUFFIX)
_REBUILD_POPULARITY = _apply_sql(suffix=REBUILD_SUFFIX, upsert=False, targets=("popularity",), count_events=False)
_APPLY_ITEM_EVENTS = _apply_sql(targets=ITEM_TARGETS)
_APPLY_USER_EVENTS = _apply_sql(targets=USER_TARGETS, sharded=True)


# "Bought together". Each purchase event is one basket; a pair's raw count and each item's raw basket count
# decay like popularity (epoch-relative, half-life SCORING_PAIRS_HALF_LIFE_DAYS). The score is the cosine
# pair / sqrt(basket_a · basket_b): bounded in [0, 1] and symmetric, so lists of different seed items merge
# by score, and it does not let a pair of rare items top every list as lift does (one shared basket gives
# two once-bought items lift N). Decay multiplies numerator and denominator alike, so a score changes only
# when a basket holds one of its items — never by the passing of time, and not by a rebase.
def _cosine(pair_raw: str, basket_a: str, basket_b: str) -> str:
    # sqrt of each side rather than of the product: two tiny (decayed) counts would underflow to 0.
    return (
        f"CASE WHEN {basket_a} > 0 AND {basket_b} > 0 THEN {pair_raw} / (sqrt({basket_a}) * sqrt({basket_b})) "
        "ELSE 0 END"
    )


# The lines of a chunk's baskets (each purchase event is one basket), each with its basket's weight
# 2^((occurred_at − epoch) / half-life).
_BASKET_LINES = f"""
SELECT e.event_id AS basket_id, unnest(e.line_item_ids) AS item_id, {_grow("pairs_half_life_s")} AS grown
FROM (SELECT event_id, line_item_ids, date_part('epoch', occurred_at - %(epoch)s) AS t_s
      FROM events
      WHERE {_PENDING} AND event_type = 'purchase') AS e
"""
# Per item of the lines, its baskets.
_BASKET_ITEMS = """
SELECT item_id, sum(grown) AS basket_raw, count(*) AS basket_count
FROM line
GROUP BY item_id
"""


def _basket_pairs(in_key_order: bool = False) -> str:
    """SQL for each unordered pair of a basket once, by the items' keys (lines are one per item, so the smaller key
    never pairs an item with itself), with its raw count and count; `keyed_line` is `line` with each item's key.
    `in_key_order`: the pairs in key order, grouped from their lines sorted by key (the planner then groups the
    sorted lines and sorts nothing more; the outer ORDER BY keeps the order whatever plan it takes)."""
    order = "ORDER BY 1, 2" if in_key_order else ""
    return f"""
SELECT item_key, paired_item_key, sum(grown) AS pair_raw, count(*) AS pair_count
FROM (SELECT a.item_key, b.item_key AS paired_item_key, a.grown
      FROM keyed_line a
      JOIN keyed_line b ON b.basket_id = a.basket_id AND a.item_key < b.item_key
      {order}) AS pair_line
GROUP BY 1, 2
{order}
"""


# A full rebuild counts every basket into the fresh copies, the items numbered afresh from 1 (on a connection
# of its own, which cannot take keys from item_key_seq: the run's transaction restarts it when it swaps the
# copies in); _RANK_REBUILT_PAIRS then scores them. The pair counts are the statement's own INSERT, whose row
# count says how many: the millions of rows a RETURNING would pass through a CTE only to be counted cost seconds.
_REBUILD_PAIR_COUNTS = f"""
WITH line AS MATERIALIZED ({_BASKET_LINES}),
basket_item AS (
    INSERT INTO item_baskets{REBUILD_SUFFIX} (item_id, item_key, basket_raw, basket_count, rescored_basket_raw)
    SELECT item_id, row_number() OVER (ORDER BY item_id), basket_raw, basket_count, basket_raw
    FROM ({_BASKET_ITEMS}) AS added
    RETURNING item_id, item_key
),
keyed_line AS MATERIALIZED (
    SELECT line.basket_id, line.grown, k.item_key FROM line JOIN basket_item k ON k.item_id = line.item_id
)
INSERT INTO item_pair_counts{REBUILD_SUFFIX} (item_key, paired_item_key, pair_raw, pair_count)
{_basket_pairs()}
"""
_REBUILT_ITEMS = f"SELECT count(*) FROM item_baskets{REBUILD_SUFFIX}"  # keyed 1…n

_RANK_REBUILT_PAIRS = f"""
INSERT INTO item_pairs{REBUILD_SUFFIX} (item_id, paired_item_id, pair_raw, score)
SELECT item_id, paired_item_id, pair_raw, score
FROM (
    SELECT side.item_id, side.paired_item_id, c.pair_raw, s.score,
           row_number() OVER (PARTITION BY side.item_id ORDER BY s.score DESC, side.paired_item_id) AS rank
    FROM item_pair_counts{REBUILD_SUFFIX} c
    JOIN item_baskets{REBUILD_SUFFIX} ba ON ba.item_key = c.item_key
    JOIN item_baskets{REBUILD_SUFFIX} bb ON bb.item_key = c.paired_item_key
    CROSS JOIN LATERAL (VALUES ({_cosine("c.pair_raw", "ba.basket_raw", "bb.basket_raw")})) AS s (score)
    CROSS JOIN LATERAL (VALUES (ba.item_id, bb.item_id), (bb.item_id, ba.item_id)) AS side (item_id, paired_item_id)
    WHERE c.pair_count >= %(min_support)s
) ranked
WHERE rank <= %(top_k)s
"""

# An incremental run, first statement: add the chunk's baskets to the item and pair counts, and upsert both
# directions of every pair bought together in the chunk that has the minimum support, scored with the counts
# from the upserts' RETURNING (a statement does not see its own writes; _RESCORE_PAIRS then gives the same
# score). An item new to item_baskets takes the next key (as a default, every row offered would use one up).
# An item whose basket count has grown past the rescoring bound (SCORING_PAIRS_RESCORE_BOUND) since its rows were
# last all rescored has its mark (rescored_basket_raw, migration 0101) moved to its new count: its rows are due, and
# _RESCORE_PAIRS rescores them in the same transaction (an item new to item_baskets is due too: its only rows are
# this statement's). Returns the pairs counted, the items it touched, those due, and those whose lists got rows.
# Both counts are upserted in key order, like the events statement's tables: a run's pairs (~70,000 for 20,000
# events, nearly all new) land all over a primary key larger than shared_buffers, and the hash aggregate's order
# visited its leaves at random, reading (and evicting) a leaf again for each pair that landed on it. The pairs are
# grouped from their lines sorted by key, which gives that order without a second sort (the planner had hashed the
# lines, spilling to disk, and then sorted the pairs: ~3 % more of the statement's CPU).
_APPLY_PAIRS = f"""
WITH line AS MATERIALIZED ({_BASKET_LINES}),
touched AS (
    INSERT INTO item_baskets AS b (item_id, item_key, basket_raw, basket_count, rescored_basket_raw)
    SELECT item_id,
           coalesce((SELECT item_key FROM item_baskets k WHERE k.item_id = added.item_id), nextval('item_key_seq')),
           basket_raw, basket_count, basket_raw
    FROM ({_BASKET_ITEMS}) AS added
    ORDER BY item_id COLLATE "C"
    ON CONFLICT (item_id) DO UPDATE
    SET basket_raw = b.basket_raw + excluded.basket_raw, basket_count = b.basket_count + excluded.basket_count,
        rescored_basket_raw = CASE
            WHEN b.basket_raw + excluded.basket_raw > b.rescored_basket_raw * (1 + %(rescore_bound)s)
            THEN b.basket_raw + excluded.basket_raw ELSE b.rescored_basket_raw END
    -- due: the mark is at the new count (also when a basket too small to change the count leaves it at its mark:
    -- rescoring then changes nothing)
    RETURNING item_id, item_key, basket_raw, rescored_basket_raw = basket_raw AS rows_due
),
keyed_line AS MATERIALIZED (
    SELECT line.basket_id, line.grown, t.item_key FROM line JOIN touched t ON t.item_id = line.item_id
),
counted AS (
    INSERT INTO item_pair_counts AS c (item_key, paired_item_key, pair_raw, pair_count)
    {_basket_pairs(in_key_order=True)}
    ON CONFLICT (item_key, paired_item_key) DO UPDATE
    SET pair_raw = c.pair_raw + excluded.pair_raw, pair_count = c.pair_count + excluded.pair_count
    RETURNING item_key, paired_item_key, pair_raw, pair_count
),
upserted AS (
    INSERT INTO item_pairs AS p (item_id, paired_item_id, pair_raw, score)
    SELECT side.item_id, side.paired_item_id, c.pair_raw, {_cosine("c.pair_raw", "ta.basket_raw", "tb.basket_raw")}
    FROM counted c
    JOIN touched ta ON ta.item_key = c.item_key
    JOIN touched tb ON tb.item_key = c.paired_item_key
    CROSS JOIN LATERAL (VALUES (ta.item_id, tb.item_id), (tb.item_id, ta.item_id)) AS side (item_id, paired_item_id)
    WHERE c.pair_count >= %(min_support)s
    ON CONFLICT (item_id, paired_item_id) DO UPDATE SET pair_raw = excluded.pair_raw, score = excluded.score
    RETURNING item_id
)
SELECT (SELECT count(*) FROM counted),
       (SELECT coalesce(array_agg(item_id), '{{}}') FROM touched),
       (SELECT coalesce(array_agg(item_id) FILTER (WHERE rows_due), '{{}}') FROM touched),
       (SELECT coalesce(array_agg(DISTINCT item_id), '{{}}') FROM upserted)
"""

# Second statement: the touched items' basket counts changed, and with them every score of theirs — a row (A, X)
# scores pair_raw / (sqrt(basket_A) · sqrt(basket_X)). Rescoring them all on every run cost as many rows as the
# touched items' lists and the lists naming them, which grow with the history (a popular item is named in many; the
# recompute bench: 48 rows at 0.5M events, 20,362 at 4M). So an item's rows on either side (its own list, item_id =
# X, and the rows of other lists naming it, paired_item_id = X) are rescored only when it is due (_APPLY_PAIRS), and
# the lists that got rows in the run in full, so that _PRUNE_PAIRS keeps their top K (ties to the smaller item id)
# by exact scores. Each row was last scored with counts of its two items between their marks and their counts now
# (a row is rescored with the current counts, and whenever an item's mark moves all its rows are), and a count is
# at most (1 + bound) times its mark: a score is at most (1 + bound) too high, sqrt(1 + bound) from each side. A
# list's order can differ from the exact one between rows whose exact scores are within that factor, and so can
# lists merged by score (the feed's seeds). A full rebuild scores exactly and marks every item; bound 0 is exact on
# every run.
# An item is due once per (1 + bound)-fold growth of its count: with a steady basket rate its epoch-relative count
# doubles every half-life, so about once every half-life · log2(1 + bound) (12.4 days at the defaults) rather than
# on every run that touches it.
# The rows are found by joining the items to each side, the items given as arrays so that the planner knows how
# many (a filter `= ANY(items) OR paired = ANY(items)` compared every row with the whole array: 0.3-0.6 s for
# ~12,700 items).
_RESCORE_PAIRS = f"""
UPDATE item_pairs p
SET score = {_cosine("p.pair_raw", "ba.basket_raw", "bb.basket_raw")}
FROM (
    SELECT p.item_id, p.paired_item_id
    FROM unnest(%(lists)s::text[]) AS listed (item_id) JOIN item_pairs p ON p.item_id = listed.item_id
    UNION
    SELECT p.item_id, p.paired_item_id
    FROM unnest(%(due)s::text[]) AS due (item_id) JOIN item_pairs p ON p.paired_item_id = due.item_id
) AS rescored, item_baskets ba, item_baskets bb
WHERE p.item_id = rescored.item_id AND p.paired_item_id = rescored.paired_item_id
  AND ba.item_id = p.item_id AND bb.item_id = p.paired_item_id
"""

# The lists that got rows keep their top K; ties go to the smaller item id in byte order, as in the rebuild.
# Between full rebuilds a list can miss a pair that would enter its top K only because another pair's score
# fell (a basket held the other's item alone): a trimmed pair comes back when next bought together, or at a
# rebuild.
_PRUNE_PAIRS = """
DELETE FROM item_pairs p
USING unnest(%(items)s::text[]) AS listed (item_id)
CROSS JOIN LATERAL (
    SELECT paired_item_id FROM item_pairs
    WHERE item_id = listed.item_id
    ORDER BY score DESC, paired_item_id COLLATE "C"
    OFFSET %(top_k)s
) AS extra
WHERE p.item_id = listed.item_id AND p.paired_item_id = extra.paired_item_id
"""


@dataclass(frozen=True)
class ScoreState:
    epoch: datetime
    scored_snapshot: str
    target_snapshot: str | None  # set while a backlog is scored in chunks
    done_below_xid: str | None
    scan_from: datetime


@dataclass(frozen=True)
class Chunk:
    """The events one transaction scores: visible in `target` but not in `scored`, with insert_xid in
    [xid_from, xid_to), received since scan_from."""

    scored: str
    target: str
    xid_from: str
    xid_to: str
    scan_from: datetime
    complete: bool  # True when it reaches the target snapshot


@dataclass(frozen=True)
class ApplyCounts:
    events_scored: int
    popularity_updates: int
    affinity_updates: int


def try_lock_recompute(conn: psycopg.Connection, timeout_ms: int) -> bool:
    """Take the recompute lock for the current transaction and bound the transaction's statements and idle
    time by `timeout_ms`; False when another run holds the lock."""
    bound_transaction(conn, timeout_ms)
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


# The watermark of every score table, and the bought-together tables' own (migration 0065): an incremental run
# scores its pairs in a transaction of their own (feedcore.scoring.pairs).
SCORE_STATE, PAIR_SCORE_STATE = "score_state", "pair_score_state"


def load_state(conn: psycopg.Connection, table: str = SCORE_STATE) -> ScoreState | None:
    """The watermark kept in `table`, locked until the transaction ends."""
    row = conn.execute(
        sql.SQL(
            """
            SELECT epoch, scored_snapshot::text, target_snapshot::text, done_below_xid::text, scan_from
            FROM {} FOR UPDATE
            """
        ).format(sql.Identifier(table))
    ).fetchone()
    return ScoreState(*row) if row else None


def save_state(conn: psycopg.Connection, state: ScoreState, table: str = SCORE_STATE) -> None:
    if table == SCORE_STATE:  # the pair tables keep a watermark of their own (migration 0065's trigger)
        conn.execute("SELECT set_config('feedcore.pairs_own_watermark', 'on', true)")
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {} (epoch, scored_snapshot, target_snapshot, done_below_xid, scan_from, updated_at)
            VALUES (%s, %s::pg_snapshot, %s::pg_snapshot, %s::xid8, %s, statement_timestamp())
            ON CONFLICT (singleton) DO UPDATE SET
                epoch = excluded.epoch, scored_snapshot = excluded.scored_snapshot,
                target_snapshot = excluded.target_snapshot, done_below_xid = excluded.done_below_xid,
                scan_from = excluded.scan_from, updated_at = excluded.updated_at
            """
        ).format(sql.Identifier(table)),
        (state.epoch, state.scored_snapshot, state.target_snapshot, state.done_below_xid, state.scan_from),
    )


def state_after(epoch: datetime, chunk: Chunk, next_scan_from: datetime) -> ScoreState:
    """The watermark once `chunk` is scored: caught up to its target when it is complete (the next run scans
    from `next_scan_from`), else part of the way through its backlog."""
    if chunk.complete:
        return ScoreState(epoch, chunk.target, None, None, next_scan_from)
    return ScoreState(epoch, chunk.scored, chunk.target, chunk.xid_to, chunk.scan_from)


def current_snapshot(conn: psycopg.Connection) -> tuple[str, datetime]:
    """The current snapshot, and the earliest moment an event not visible in it can have been received:
    the start of the oldest open transaction (less a margin)."""
    row = conn.execute(
        """
        SELECT pg_current_snapshot()::text,
               least(statement_timestamp(), oldest_transaction_start()) - %s
        """,
        (SCAN_MARGIN,),
    ).fetchone()
    return row[0], row[1]


# The statements of an incremental chunk find its events through each month's received_at BRIN index, with
# sequential scans off for them alone (in their transaction: no session state). The planner costs a BRIN scan by
# the column's physical correlation, so it read in full a month whose rows were stored out of arrival order (a
# backfill, the bench's history) although every block range of it ends before the chunk's scan bound: ~150 ms for
# a month of the bench's history, in each of the chunk's bound, its events statement and its pairs statement.
def _execute_on_pending(conn: psycopg.Connection, query: str, params: dict[str, object]) -> psycopg.Cursor:
    was = conn.execute("SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)")
    setting = was.fetchone()[0]
    cursor = conn.execute(query, params)
    conn.execute("SELECT set_config('enable_seqscan', %s, true)", (setting,))
    return cursor


def next_chunk(
    conn: psycopg.Connection, scored: str, target: str, done_below: str, scan_from: datetime, max_events: int
) -> Chunk:
    """The events between the two snapshots from `done_below` on, cut at a transaction boundary after about
    `max_events` events."""
    xid_to = conn.execute("SELECT pg_snapshot_xmax(%s::pg_snapshot)::text", (target,)).fetchone()[0]
    row = _execute_on_pending(
        conn,
        # By the column, not by the text of the output column of the same name: '1000' sorts before '999'.
        f"SELECT insert_xid::text FROM events WHERE {_PENDING}"
        " ORDER BY events.insert_xid OFFSET %(max_events)s LIMIT 1",
        {"scan_from": scan_from, "xid_from": done_below, "xid_to": xid_to, "target": target, "scored": scored,
         "max_events": max_events},
    ).fetchone()  # fmt: skip
    if row is None:
        return Chunk(scored, target, done_below, xid_to, scan_from, complete=True)
    cut = row[0] if int(row[0]) > int(done_below) else str(int(row[0]) + 1)  # one transaction over the limit
    return Chunk(scored, target, done_below, cut, scan_from, complete=False)


def _pending_params(chunk: Chunk) -> dict[str, object]:
    """The parameters of the _PENDING filter that select the chunk's events."""
    return {"scan_from": chunk.scan_from, "xid_from": chunk.xid_from, "xid_to": chunk.xid_to,
            "target": chunk.target, "scored": chunk.scored}  # fmt: skip


def chunk_holds_events(conn: psycopg.Connection, chunk: Chunk, at_least: int) -> bool:
    """Whether the chunk has `at_least` events (rows of the log, as SCORING_CHUNK_EVENTS counts them)."""
    row = _execute_on_pending(
        conn,
        f"SELECT count(*) FROM (SELECT FROM events WHERE {_PENDING} LIMIT %(at_least)s) AS pending",
        {**_pending_params(chunk), "at_least": at_least},
    ).fetchone()
    return row[0] >= at_least


def _apply_params(settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime) -> dict[str, object]:
    return {
        "now": now,
        "epoch": epoch,
        **_pending_params(chunk),
        "purchase_weight": settings.purchase_weight,
        "add_to_cart_weight": settings.add_to_cart_weight,
        "click_weight": settings.click_weight,
        "popularity_half_life_s": settings.popularity_half_life_days * 86_400,
        "affinity_half_life_s": settings.affinity_half_life_days * 86_400,
        "buy_again_half_life_s": settings.buy_again_half_life_days * 86_400,
        "trending_half_life_s": settings.trending_half_life_hours * 3_600,
        "age_s": (now - epoch).total_seconds(),
        "prior_per_day": settings.trending_prior_per_day,
    }


def apply_events(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime
) -> ApplyCounts:
    """Add the chunk's events into every score table."""
    return ApplyCounts(*_execute_on_pending(conn, _APPLY_EVENTS, _apply_params(settings, epoch, chunk, now)).fetchone())


def apply_item_events(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime
) -> ApplyCounts:
    """Add the chunk's events into the item-level score tables only (popularity, trending, item reorders); the
    per-user counts are 0."""
    params = _apply_params(settings, epoch, chunk, now)
    return ApplyCounts(*_execute_on_pending(conn, _APPLY_ITEM_EVENTS, params).fetchone())


def apply_user_events(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime,
    shard: int, shard_count: int,
) -> ApplyCounts:  # fmt: skip
    """Add the chunk's events of the users of `shard` (of `shard_count`, see user_shard_sql) into the per-user
    score tables and `users`; events_scored counts that shard's events, popularity_updates is 0."""
    params = _apply_params(settings, epoch, chunk, now) | {"shard": shard, "shard_count": shard_count}
    return ApplyCounts(*_execute_on_pending(conn, _APPLY_USER_EVENTS, params).fetchone())


@dataclass(frozen=True)
class PairCounts:
    pair_updates: int  # unordered pairs counted
    item_updates: int  # items whose basket count changed


def _pair_params(settings: ScoringSettings, epoch: datetime, chunk: Chunk) -> dict[str, object]:
    return {
        "epoch": epoch,
        **_pending_params(chunk),
        "pairs_half_life_s": settings.pairs_half_life_days * 86_400,
        "min_support": settings.pairs_min_support,
        "rescore_bound": settings.pairs_rescore_bound,
    }


def apply_pairs(conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk) -> PairCounts:
    """Add the chunk's purchase baskets to the bought-together counts and bring item_pairs up to date: the
    pairs bought together in the chunk with the minimum support, the rows on either side of the touched items whose
    counts grew past the rescoring bound, and the lists that got rows, which keep their top K."""
    pairs, touched, due, listed = _execute_on_pending(
        conn, _APPLY_PAIRS, _pair_params(settings, epoch, chunk)
    ).fetchone()
    if due or listed:
        conn.execute(_RESCORE_PAIRS, {"lists": sorted(set(due) | set(listed)), "due": due})
    if listed:
        conn.execute(_PRUNE_PAIRS, {"items": listed, "top_k": settings.pairs_top_k})
    return PairCounts(pairs, len(touched))


# Each store's top is the top of its trending list as its shelf was last packed (by the previous run, or by the
# availability route), read from the pack: the first positions of trending_items, over the shelf positions of the pack's
# catalog (migration 0088). item_popularity keeps no index on the trending score (migration 0089), so that the run's
# upserts of popularity are HOT updates. An item the run scored got its score as of the run from the run's upsert; an
# item without events ranks no higher than it did at the last pack, when this refresh or an upsert had last written
# it. A store whose pack is not current (missing, stale, over another catalog; a store the catalog does not know has
# none) has its top found by sorting its rows instead. The stores are found by skipping through the primary key, one
# probe per store (a DISTINCT read the whole table).
# A row whose score is already the one as of the run (the run's upsert wrote it: an item of the top that had events)
# is left alone: rewriting the same value is an update for nothing.
_REFRESH_TRENDING = f"""
WITH RECURSIVE store AS (
    SELECT min(store_id) AS store_id FROM item_popularity
    UNION ALL
    SELECT (SELECT min(p.store_id) FROM item_popularity p WHERE p.store_id > store.store_id)
    FROM store
    WHERE store.store_id IS NOT NULL
),
packed AS MATERIALIZED (  -- the top's positions, read once (a shelf's lists are stored out of line)
    SELECT store_id, substring(trending_items FROM 1 FOR 4 * %(keep_fresh)s) AS top
    FROM store_shelves
    WHERE NOT stale AND catalog_version = (SELECT catalog_version FROM shelf_positions LIMIT 1)
      AND catalog_version = (SELECT version FROM catalog_state)
),
refreshed AS (
    SELECT packed.store_id, c.item_id
    FROM packed
    CROSS JOIN generate_series(0, %(keep_fresh)s - 1) AS k (n)
    JOIN shelf_positions c
      ON c.position = (get_byte(packed.top, 4 * k.n) << 24) | (get_byte(packed.top, 4 * k.n + 1) << 16)
                      | (get_byte(packed.top, 4 * k.n + 2) << 8) | get_byte(packed.top, 4 * k.n + 3)
    WHERE 4 * k.n < length(packed.top)
    UNION ALL
    SELECT top.store_id, top.item_id
    FROM store s
    CROSS JOIN LATERAL (
        SELECT store_id, item_id FROM item_popularity p
        WHERE p.store_id = s.store_id ORDER BY trending_score DESC LIMIT %(keep_fresh)s
    ) top
    WHERE s.store_id IS NOT NULL AND NOT EXISTS (SELECT FROM packed WHERE packed.store_id = s.store_id)
)
UPDATE item_popularity p
SET trending_score = {_trending("p.short_raw", "p.raw_score")}
FROM refreshed r
WHERE p.store_id = r.store_id AND p.item_id = r.item_id
  AND p.trending_score IS DISTINCT FROM {_trending("p.short_raw", "p.raw_score")}
"""


def refresh_trending(conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, as_of: datetime) -> int:
    """Recompute the trending score of each store's top (as its shelf was last packed), and of the top over all
    stores ('*', which stores the catalog does not know are served), whose scores age without events; returns how
    many rows changed."""
    return conn.execute(
        _REFRESH_TRENDING,
        {
            "age_s": (as_of - epoch).total_seconds(),
            "trending_half_life_s": settings.trending_half_life_hours * 3_600,
            "popularity_half_life_s": settings.popularity_half_life_days * 86_400,
            "prior_per_day": settings.trending_prior_per_day,
            "keep_fresh": TRENDING_KEPT_FRESH,
        },
    ).rowcount


# A full rebuild fills fresh, unindexed copies of the score tables (suffix "_rebuild"), indexes them and swaps
# them in, in parts on connections of their own, side by side (PostgreSQL runs an INSERT … SELECT on one
# core): the run's transaction fills and indexes the copies of REBUILD_RUN_TABLES (and adds new users), and
# the other parts fill, index and commit theirs in transactions that share the run's snapshot; the run's
# transaction then swaps every copy in at once. A part's copies outlive a run that fails after the part
# committed: the next rebuild drops them.
REBUILD_RUN_TABLES = ("user_item_affinity", USER_ORDERS_TABLE, ITEM_REORDERS_TABLE)
REBUILD_POPULARITY_TABLES = ("item_popularity",)
REBUILD_PAIR_TABLES = ("item_baskets", "item_pair_counts", "item_pairs")
SCORE_TABLES = REBUILD_RUN_TABLES + REBUILD_POPULARITY_TABLES + REBUILD_PAIR_TABLES


# The live table's privileges (on the table, and on its columns), as GRANT statements for its copy; the
# owner's own are implied by ownership.
_TABLE_GRANTS = """
SELECT g.privilege_type, NULL, r.rolname
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS g JOIN pg_roles r ON r.oid = g.grantee
WHERE c.oid = %(table)s::regclass AND g.grantee <> c.relowner
UNION ALL
SELECT g.privilege_type, a.attname, r.rolname
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid CROSS JOIN LATERAL aclexplode(a.attacl) AS g
JOIN pg_roles r ON r.oid = g.grantee
WHERE c.oid = %(table)s::regclass AND g.grantee <> c.relowner
"""


# The storage parameter a rebuild's copies turn off until the swap, as pg_class.reloptions spells it.
_AUTOVACUUM_ENABLED = "autovacuum_enabled="


def start_rebuild(conn: psycopg.Connection, tables: tuple[str, ...]) -> None:
    """Create empty, unindexed copies of `tables` for a full rebuild to fill (dropping any left behind), with the
    tables' storage parameters but autovacuum off until the swap (_restore_autovacuum).

    A part commits its copies long before the swap, and autovacuum may then vacuum them: the swap's ALTER TABLE on a
    copy waited for the vacuum's lock while the vacuum, ending, waited to update the copy's pg_class row, which the
    swap's GRANT had updated — a deadlock that failed the rebuild (one of six bench rebuilds on PostgreSQL 15.18; the
    vacuum waits for such a GRANT since commit a07e03f, back-patched to every supported version, which the embedded
    16.2 predates). Each part analyzes its copies itself."""
    for table in tables:
        copy = sql.Identifier(table + REBUILD_SUFFIX)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(copy))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)").format(
                copy, sql.Identifier(table)
            )
        )
        # Storage parameters (fillfactor) are not part of LIKE.
        options = [o for o in _storage_parameters(conn, table) if not o.startswith(_AUTOVACUUM_ENABLED)]
        conn.execute(
            sql.SQL("ALTER TABLE {} SET ({})").format(
                copy, sql.SQL(", ").join(sql.SQL(o) for o in [*options, f"{_AUTOVACUUM_ENABLED}false"])
            )
        )


def _storage_parameters(conn: psycopg.Connection, table: str) -> list[str]:
    (options,) = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
    return options or []


def _restore_autovacuum(conn: psycopg.Connection, table: str, copy: str) -> None:
    """Give `copy` the autovacuum setting `table` has (start_rebuild turned it off)."""
    setting = [o for o in _storage_parameters(conn, table) if o.startswith(_AUTOVACUUM_ENABLED)]
    if setting:
        conn.execute(sql.SQL("ALTER TABLE {} SET ({})").format(sql.Identifier(copy), sql.SQL(setting[0])))
    else:
        conn.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(sql.Identifier(copy)))


def _take_owner_and_privileges(conn: psycopg.Connection, table: str, copy: str) -> None:
    """Give `copy` the owner and privileges `table` has now, as the swap puts it in its place (the functions'
    roles, migration 0061, keep their access through a rebuild, also to what a deploy granted during it)."""
    (owner,) = conn.execute(
        "SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = %s::regclass", (table,)
    ).fetchone()
    for privilege, column, grantee in conn.execute(_TABLE_GRANTS, {"table": table}).fetchall():
        conn.execute(
            sql.SQL("GRANT {} {} ON {} TO {}").format(
                sql.SQL(privilege),
                sql.SQL("({})").format(sql.Identifier(column)) if column else sql.SQL(""),
                sql.Identifier(copy),
                sql.Identifier(grantee),
            )
        )
    conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(copy), sql.Identifier(owner)))


def export_snapshot(conn: psycopg.Connection) -> str:
    """The id of the current transaction's snapshot, for the other parts of a rebuild to import. The
    transaction first locks the event log's partitions against retention's DROP until it ends: a part reads
    them only after it has imported the snapshot, which does not cover the catalog."""
    conn.execute("LOCK TABLE events IN ACCESS SHARE MODE")
    return conn.execute("SELECT pg_export_snapshot()").fetchone()[0]


def rebuild_events(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime
) -> ApplyCounts:
    """The run's part of a rebuild: score the chunk's events into the copies of REBUILD_RUN_TABLES (started
    by start_rebuild; the item reorders from the user × item copy), add new users, and index the copies;
    popularity_updates is 0 (rebuild_popularity)."""
    counts = ApplyCounts(*conn.execute(_REBUILD_EVENTS, _apply_params(settings, epoch, chunk, now)).fetchone())
    conn.execute(_REBUILD_ITEM_REORDERS)
    _index_rebuilt(conn, REBUILD_RUN_TABLES)
    return counts


def rebuild_popularity(
    conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk, now: datetime
) -> ApplyCounts:
    """A part of a rebuild: the copy of item_popularity, filled and indexed; events_scored and affinity_updates
    are 0 (rebuild_events)."""
    # A copy code from before migration 0096 may have left (a rebuild of its that failed after this part committed).
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("user_category_affinity" + REBUILD_SUFFIX)))
    start_rebuild(conn, REBUILD_POPULARITY_TABLES)
    counts = ApplyCounts(*conn.execute(_REBUILD_POPULARITY, _apply_params(settings, epoch, chunk, now)).fetchone())
    _index_rebuilt(conn, REBUILD_POPULARITY_TABLES)
    return counts


def rebuild_pairs(conn: psycopg.Connection, settings: ScoringSettings, epoch: datetime, chunk: Chunk) -> PairCounts:
    """A part of a rebuild: the copies of the bought-together tables — every basket counted, then each item's
    top K pairs of the minimum support ranked — analyzed and indexed. item_updates is the number of items,
    keyed 1…n (swap_rebuilt restarts item_key_seq after them)."""
    start_rebuild(conn, REBUILD_PAIR_TABLES)
    pairs = conn.execute(_REBUILD_PAIR_COUNTS, _pair_params(settings, epoch, chunk)).rowcount
    (items,) = conn.execute(_REBUILT_ITEMS).fetchone()
    # Without their statistics the planner joins the millions of counts to the items by nested loops.
    counts_tables = ("item_baskets", "item_pair_counts")
    for table in counts_tables:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table + REBUILD_SUFFIX)))
    conn.execute(_RANK_REBUILT_PAIRS, {"min_support": settings.pairs_min_support, "top_k": settings.pairs_top_k})
    _index_rebuilt(conn, REBUILD_PAIR_TABLES, analyzed=counts_tables)
    return PairCounts(pairs, items)


def _index_on_copy(definition: str, table: str, copy: str) -> str:
    """pg_indexes' "CREATE [UNIQUE] INDEX name ON schema.table USING …", for the copy and a temporary name."""
    match = re.match(rf"^(CREATE (?:UNIQUE )?INDEX )(\S+)( ON \S+\.){re.escape(table)}( USING .*)$", definition)
    if match is None:
        raise ValueError(f"unexpected index definition: {definition}")
    return f"{match[1]}{match[2]}{REBUILD_SUFFIX}{match[3]}{copy}{match[4]}"


def _live_indexes(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
        (table,),
    ).fetchall()


def _index_rebuilt(conn: psycopg.Connection, tables: tuple[str, ...], analyzed: tuple[str, ...] = ()) -> None:
    """Analyze the filled copies of `tables` (but those `analyzed` already) and index them like the live
    tables, under temporary names."""
    for table in tables:
        rebuilt = table + REBUILD_SUFFIX
        if table not in analyzed:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(rebuilt)))
        for _, definition in _live_indexes(conn, table):
            conn.execute(_index_on_copy(definition, table, rebuilt))


def swap_rebuilt(conn: psycopg.Connection, items_keyed: int) -> None:
    """Swap the indexed copies of every score table in for the live ones, and let item_key_seq continue after
    the `items_keyed` keys of the rebuilt pair counts. Readers wait only for the swap itself (metadata
    changes), not for the rebuild or the index builds. The copies take the old tables' owner and privileges."""
    for table in SCORE_TABLES:  # before the first DROP: readers wait on no table while these are granted
        # First: its ALTER TABLE locks the copy before the GRANTs update its pg_class row, so a vacuum the setting
        # does not stop (anti-wraparound, or run by hand) is waited for rather than deadlocked (start_rebuild).
        _restore_autovacuum(conn, table, table + REBUILD_SUFFIX)
        _take_owner_and_privileges(conn, table, table + REBUILD_SUFFIX)
    for table in SCORE_TABLES:
        rebuilt = table + REBUILD_SUFFIX
        indexes = _live_indexes(conn, table)
        (primary_key,) = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (table,)
        ).fetchone()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(rebuilt), sql.Identifier(table)))
        for name, _ in indexes:
            if name == primary_key:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
                        sql.Identifier(table), sql.Identifier(name), sql.Identifier(name + REBUILD_SUFFIX)
                    )
                )
            else:
                conn.execute(
                    sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                        sql.Identifier(name + REBUILD_SUFFIX), sql.Identifier(name)
                    )
                )
    # Transactional (PostgreSQL 10+): a rebuild that fails leaves the sequence where it was.
    conn.execute(sql.SQL("ALTER SEQUENCE item_key_seq RESTART WITH {}").format(sql.Literal(items_keyed + 1)))


def rebase(conn: psycopg.Connection, settings: ScoringSettings, old_epoch: datetime, new_epoch: datetime) -> None:
    """Move every raw score to a later epoch (keeps the exponents small); decayed values do not change.
    Values too small to represent after the move become 0."""
    params = {
        "age_s": (new_epoch - old_epoch).total_seconds(),
        "popularity_half_life_s": settings.popularity_half_life_days * 86_400,
        "trending_half_life_s": settings.trending_half_life_hours * 3_600,
        "affinity_half_life_s": settings.affinity_half_life_days * 86_400,
        "buy_again_half_life_s": settings.buy_again_half_life_days * 86_400,
        "pairs_half_life_s": settings.pairs_half_life_days * 86_400,
    }
    conn.execute(
        f"""UPDATE item_popularity SET raw_score = {_decay("raw_score", "popularity_half_life_s")},
                                     short_raw = {_decay("short_raw", "trending_half_life_s")}""",
        params,
    )
    conn.execute(
        f"""UPDATE user_item_affinity SET affinity_raw = {_decay("affinity_raw", "affinity_half_life_s")},
                                         purchase_raw = {_decay("purchase_raw", "buy_again_half_life_s")}""",
        params,
    )
    # Pair scores are ratios of counts decayed alike: they do not change, and neither does an item's count over its
    # mark (the pairs' rescoring bound's).
    conn.execute(
        f"""UPDATE item_baskets SET basket_raw = {_decay("basket_raw", "pairs_half_life_s")},
                                   rescored_basket_raw = {_decay("rescored_basket_raw", "pairs_half_life_s")}""",
        params,
    )
    for table in ("item_pair_counts", "item_pairs"):
        conn.execute(f"UPDATE {table} SET pair_raw = {_decay('pair_raw', 'pairs_half_life_s')}", params)


def record_run(
    conn: psycopg.Connection, mode: str, started_at: datetime, finished_at: datetime, chunk: Chunk,
    counts: ApplyCounts,
) -> int:  # fmt: skip
    """Append a row to score_runs; returns its run_id."""
    row = conn.execute(
        """
        INSERT INTO score_runs (mode, started_at, finished_at, events_scored, popularity_updates,
                                affinity_updates, scored_snapshot)
        VALUES (%s, %s, %s, %s, %s, %s, %s::pg_snapshot)
        RETURNING run_id
        """,
        (mode, started_at, finished_at, counts.events_scored, counts.popularity_updates, counts.affinity_updates,
         chunk.target),
    ).fetchone()  # fmt: skip
    return row[0]


def shelf_store_ids(conn: psycopg.Connection) -> list[str]:
    """The stores whose shelves the recompute packs for the feed: every store the catalog knows, and '*'."""
    return [row[0] for row in conn.execute("SELECT store_id FROM stores UNION ALL SELECT '*'").fetchall()]


def lock_out_recompute(conn: psycopg.Connection) -> None:
    """Wait for a running recompute chunk and keep new ones out until this transaction ends; raises
    LockWaitTimedOut when the transaction's statement timeout ends the wait."""
    wait_for_lock(conn, "SELECT pg_advisory_xact_lock(%s)", (RECOMPUTE_LOCK_KEY,))


# user_category_affinity is read by nothing since migration 0096, but code from before it (running while a deploy
# migrates, or after a rollback) still writes it: the user's rows there are theirs until the table is dropped.
def delete_user_scores(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's per-user and model scores; returns how many rows."""
    return sum(
        conn.execute(sql.SQL("DELETE FROM {} WHERE user_id = %s").format(sql.Identifier(table)), (user_id,)).rowcount
        for table in ("user_item_affinity", "user_category_affinity", USER_ORDERS_TABLE, "model_scores")
    )
