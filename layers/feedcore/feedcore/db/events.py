"""The event log: one row per event in monthly partitions, stored at most once per event_id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

import psycopg
from psycopg import sql

from feedcore.api.models import PurchaseEvent, ValidEvent

# Serializes partition creation between concurrent writers.
PARTITION_LOCK_KEY = 7_246_201_119
# Months whose partition this process has seen to exist (partitions are only dropped by retention, which
# clears this cache in the process that runs it, and only for months older than the late-event horizon).
_known_months: set[date] = set()

# One statement, one round trip: the events whose event_id is new are stored, with their purchase lines
# (sent flat and regrouped per event) and any users not seen before. Rows are taken in event_id order so
# that two overlapping batches lock in the same order and cannot deadlock.
_STORE_EVENTS = """
WITH line AS (
    SELECT event_no,
           array_agg(item_id ORDER BY line_no) AS item_ids,
           array_agg(quantity ORDER BY line_no) AS quantities,
           array_agg(unit_price ORDER BY line_no) AS unit_prices
    FROM unnest(%(line_event_no)s::int[], %(line_item_id)s::text[], %(line_quantity)s::int[],
                %(line_unit_price)s::numeric[]) WITH ORDINALITY AS l (event_no, item_id, quantity, unit_price, line_no)
    GROUP BY event_no
),
incoming AS (
    SELECT e.*, line.item_ids, line.quantities, line.unit_prices
    FROM unnest(
        %(event_id)s::uuid[], %(occurred_at)s::timestamptz[], %(event_type)s::text[], %(user_id)s::text[],
        %(store_id)s::text[], %(item_id)s::text[], %(quantity)s::int[], %(order_id)s::text[],
        %(feed_id)s::text[], %(section)s::text[], %(position)s::int[]
    ) WITH ORDINALITY AS e (event_id, occurred_at, event_type, user_id, store_id, item_id, quantity, order_id,
                            feed_id, section, position, event_no)
    LEFT JOIN line ON line.event_no = e.event_no
),
new_id AS (
    INSERT INTO event_ids (event_id, occurred_at)
    SELECT event_id, occurred_at FROM incoming ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
),
stored AS (
    INSERT INTO events (event_id, occurred_at, event_type, user_id, store_id, item_id, quantity, order_id,
                        line_item_ids, line_quantities, line_unit_prices, feed_id, section, position)
    SELECT i.event_id, i.occurred_at, i.event_type, i.user_id, i.store_id, i.item_id, i.quantity, i.order_id,
           i.item_ids, i.quantities, i.unit_prices, i.feed_id, i.section, i.position
    FROM incoming i JOIN new_id USING (event_id)
    RETURNING event_id, user_id, store_id, item_id, line_item_ids
),
new_user AS (
    INSERT INTO users (user_id, home_store_id)
    SELECT DISTINCT ON (user_id) user_id, store_id FROM stored ORDER BY user_id
    ON CONFLICT (user_id) DO NOTHING
)
SELECT (SELECT coalesce(array_agg(event_id), '{}') FROM stored),
       (SELECT count(*)
        FROM stored s CROSS JOIN LATERAL unnest(coalesce(s.line_item_ids, ARRAY[s.item_id])) AS x (item_id)
        WHERE NOT EXISTS (SELECT 1 FROM items WHERE items.item_id = x.item_id))
"""


@dataclass(frozen=True)
class StoredEvents:
    event_ids: frozenset[UUID]
    unknown_items: int


def month_of(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"events_{month:%Y_%m}"


def ensure_event_partitions(conn: psycopg.Connection, months: Iterable[date]) -> None:
    """Create the monthly partitions of `months` that do not exist yet. Runs in its own transaction."""
    missing = sorted(set(months) - _known_months)
    if not missing:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
        for month in missing:
            start = datetime(month.year, month.month, 1, tzinfo=UTC)
            end = datetime(_next_month(month).year, _next_month(month).month, 1, tzinfo=UTC)
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(partition_name(month)), sql.Literal(start), sql.Literal(end)
                )
            )
    _known_months.update(missing)


def store_events(conn: psycopg.Connection, events: Sequence[ValidEvent]) -> StoredEvents:
    """Insert the events whose event_id is new, in the caller's transaction.

    Returns the event_ids stored by this call and how many of them (or of their purchase lines) name an
    item missing from the catalog. The months' partitions must exist (ensure_event_partitions).
    """
    params: dict[str, list] = {
        key: []
        for key in (
            "event_id", "occurred_at", "event_type", "user_id", "store_id", "item_id", "quantity", "order_id",
            "feed_id", "section", "position", "line_event_no", "line_item_id", "line_quantity", "line_unit_price",
        )
    }  # fmt: skip
    for event_no, event in enumerate(events, start=1):
        params["event_id"].append(event.event_id)
        params["occurred_at"].append(event.occurred_at)
        params["event_type"].append(event.type)
        params["user_id"].append(event.user_id)
        params["store_id"].append(event.store_id)
        params["item_id"].append(getattr(event, "item_id", None))
        params["quantity"].append(getattr(event, "quantity", None))
        params["order_id"].append(getattr(event, "order_id", None))
        params["feed_id"].append(getattr(event, "feed_id", None))
        params["section"].append(getattr(event, "section", None))
        params["position"].append(getattr(event, "position", None))
        if isinstance(event, PurchaseEvent):
            for line in event.items:
                params["line_event_no"].append(event_no)
                params["line_item_id"].append(line.item_id)
                params["line_quantity"].append(line.quantity)
                params["line_unit_price"].append(line.unit_price)
    stored_ids, unknown_items = conn.execute(_STORE_EVENTS, params).fetchone()
    return StoredEvents(frozenset(stored_ids), unknown_items)


def drop_partitions_before(conn: psycopg.Connection, cutoff: datetime) -> list[str]:
    """Drop the monthly partitions that end on or before `cutoff`, and forget their event_ids.

    Returns the names of the dropped partitions. A retried event older than the dropped months would be
    stored again, which is why retention must keep more than the late-event horizon.
    """
    children = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass ORDER BY c.relname"
    ).fetchall()
    dropped: list[str] = []
    kept_from: datetime | None = None
    with conn.transaction():
        for (name,) in children:
            month = datetime.strptime(name, "events_%Y_%m").date()
            end = _next_month(month)
            end_at = datetime(end.year, end.month, 1, tzinfo=UTC)
            if end_at <= cutoff:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                _known_months.discard(month)
                dropped.append(name)
                kept_from = end_at
        if kept_from is not None:
            conn.execute("DELETE FROM event_ids WHERE occurred_at < %s", (kept_from,))
    return dropped


def delete_user_events(conn: psycopg.Connection, user_id: str) -> int:
    """Delete the user's events; returns how many. Their event_ids stay (ids and times only, no personal
    data) so that a late retry of a deleted event is a duplicate rather than brought back."""
    return conn.execute("DELETE FROM events WHERE user_id = %s", (user_id,)).rowcount
