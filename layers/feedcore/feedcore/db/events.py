"""The event log: append-only, idempotent by event_id."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from feedcore.api.models import Event, PurchaseEvent

# One statement, one round trip: the new events, their purchase lines and any users not seen before.
# Duplicates (by event_id) insert nothing, and their lines are skipped with them.
_STORE_EVENTS = """
WITH incoming AS (
    SELECT *
    FROM unnest(
        %(event_id)s::uuid[], %(event_type)s::text[], %(user_id)s::text[], %(store_id)s::text[],
        %(occurred_at)s::timestamptz[], %(item_id)s::text[], %(order_id)s::text[],
        %(feed_id)s::text[], %(section)s::text[], %(position)s::int[]
    ) AS e (event_id, event_type, user_id, store_id, occurred_at, item_id, order_id, feed_id, section, position)
),
inserted AS (
    INSERT INTO events (event_id, event_type, user_id, store_id, occurred_at, item_id, order_id,
                        feed_id, section, position)
    SELECT event_id, event_type, user_id, store_id, occurred_at, item_id, order_id, feed_id, section, position
    FROM incoming
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
),
lines AS (
    INSERT INTO purchase_lines (event_id, line_no, item_id, quantity, unit_price)
    SELECT l.event_id, l.line_no, l.item_id, l.quantity, l.unit_price
    FROM unnest(
        %(line_event_id)s::uuid[], %(line_no)s::int[], %(line_item_id)s::text[],
        %(line_quantity)s::int[], %(line_unit_price)s::numeric[]
    ) AS l (event_id, line_no, item_id, quantity, unit_price)
    JOIN inserted USING (event_id)
),
new_users AS (
    INSERT INTO users (user_id, home_store_id)
    SELECT DISTINCT ON (user_id) user_id, store_id FROM incoming ORDER BY user_id
    ON CONFLICT (user_id) DO NOTHING
)
SELECT count(*) FROM inserted
"""


def store_events(conn: psycopg.Connection, events: Sequence[Event]) -> int:
    """Insert the events whose event_id is new; returns how many were stored.

    `events` must not repeat an event_id (the ingestion service removes in-batch repeats first).
    """
    params: dict[str, list] = {
        key: []
        for key in (
            "event_id",
            "event_type",
            "user_id",
            "store_id",
            "occurred_at",
            "item_id",
            "order_id",
            "feed_id",
            "section",
            "position",
            "line_event_id",
            "line_no",
            "line_item_id",
            "line_quantity",
            "line_unit_price",
        )
    }
    for event in events:
        params["event_id"].append(event.event_id)
        params["event_type"].append(event.type)
        params["user_id"].append(event.user_id)
        params["store_id"].append(event.store_id)
        params["occurred_at"].append(event.occurred_at)
        params["item_id"].append(getattr(event, "item_id", None))
        params["order_id"].append(getattr(event, "order_id", None))
        params["feed_id"].append(getattr(event, "feed_id", None))
        params["section"].append(getattr(event, "section", None))
        params["position"].append(getattr(event, "position", None))
        if isinstance(event, PurchaseEvent):
            for line_no, line in enumerate(event.items):
                params["line_event_id"].append(event.event_id)
                params["line_no"].append(line_no)
                params["line_item_id"].append(line.item_id)
                params["line_quantity"].append(line.quantity)
                params["line_unit_price"].append(line.unit_price)
    row = conn.execute(_STORE_EVENTS, params).fetchone()
    return row[0] if row else 0
