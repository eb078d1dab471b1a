"""The event log: one row per event in monthly partitions, stored at most once per event_id."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

import psycopg
from psycopg import sql
from pydantic import TypeAdapter

from feedcore.api.event_models import ValidEvent

# Serializes partition creation between concurrent writers.
PARTITION_LOCK_KEY = 7_246_201_119
# Months whose partition this process has seen to exist (partitions are only dropped by retention, which
# clears this cache in the process that runs it, and only for months older than the late-event horizon).
_known_months: set[date] = set()

# One statement, one round trip: the events whose event_id is new are stored, purchase lines becoming
# arrays in the event's row. The batch travels as one JSON document (serialized by pydantic's Rust core,
# which beats adapting thousands of values one by one; json, not jsonb, as it is read once). The statement
# also says which of the item ids the caller could not vouch for are in the catalog (by index lookups).
# Rows are taken in event_id order so that two overlapping batches lock in the same order and cannot
# deadlock.
_STORE_EVENTS = """
WITH incoming AS (
    SELECT *
    FROM json_to_recordset(%(events)s::json) AS e (
        event_id uuid, occurred_at timestamptz, type text, user_id text, store_id text, item_id text,
        quantity int, order_id text, items json, feed_id text, section text, position int)
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
    SELECT i.event_id, i.occurred_at, i.type, i.user_id, i.store_id, i.item_id, i.quantity, i.order_id,
           line.item_ids, line.quantities, line.unit_prices, i.feed_id, i.section, i.position
    FROM incoming i
    JOIN new_id USING (event_id)
    LEFT JOIN LATERAL (
        SELECT array_agg(l.item_id ORDER BY l.line_no) AS item_ids,
               array_agg(l.quantity ORDER BY l.line_no) AS quantities,
               array_agg(l.unit_price ORDER BY l.line_no) AS unit_prices
        FROM ROWS FROM (json_to_recordset(i.items) AS (item_id text, quantity int, unit_price numeric))
             WITH ORDINALITY AS l (item_id, quantity, unit_price, line_no)
    ) line ON i.items IS NOT NULL
    RETURNING event_id
)
SELECT (SELECT coalesce(array_agg(event_id), '{}') FROM incoming WHERE event_id NOT IN (SELECT event_id FROM stored)),
       (SELECT coalesce(array_agg(item_id), '{}') FROM items WHERE item_id = ANY(%(unverified_items)s::text[]))
"""
_EVENTS_JSON = TypeAdapter(list[ValidEvent])


class MissingPartition(Exception):
    """An event's month has no partition; ensure_event_partitions, then retry."""


@dataclass(frozen=True)
class StoredEvents:
    """What a store_events call did: the event_ids that were stored before (all others are now), and which
    of the unverified item ids are in the catalog."""

    duplicate_ids: frozenset[UUID]
    catalog_items: frozenset[str]


def month_of(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def partition_name(month: date) -> str:
    return f"events_{month:%Y_%m}"


def forget_known_partitions() -> None:
    """Forget which monthly partitions exist: for a process that points feedcore at another database."""
    _known_months.clear()


def ensure_event_partitions(conn: psycopg.Connection, months: Iterable[date]) -> None:
    """Create the monthly partitions of `months` that do not exist yet. Runs in its own transaction."""
    missing = sorted(set(months) - _known_months)
    if not missing:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
        for month in missing:
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(partition_name(month)),
                    sql.Literal(month_start(month)),
                    sql.Literal(month_start(next_month(month))),
                )
            )
    _known_months.update(missing)


def store_events(
    conn: psycopg.Connection, events: Sequence[ValidEvent], unverified_items: Collection[str] = ()
) -> StoredEvents:
    """Insert the events whose event_id is new, in the caller's transaction, and look `unverified_items` up
    in the catalog.

    Returns the event_ids that were already stored (usually none) and the unverified items that exist. The
    months' partitions must exist (ensure_event_partitions).
    """
    params = {"events": _EVENTS_JSON.dump_json(list(events)).decode(), "unverified_items": list(unverified_items)}
    try:
        duplicate_ids, catalog_items = conn.execute(_STORE_EVENTS, params).fetchone()
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name is not None:  # a CHECK constraint, not partition routing
            raise
        # This process believed a partition exists that does not (the database was replaced or restored).
        forget_known_partitions()
        raise MissingPartition(str(exc)) from exc
    return StoredEvents(frozenset(duplicate_ids), frozenset(catalog_items))


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
            end_at = month_start(next_month(month))
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
