"""Load a generated dataset into the database through the same data-access code the service uses; and pick the
printed example calls' user, store and item with a query of the demo's own (the service never asks it)."""

from __future__ import annotations

from itertools import batched

import psycopg

from feedcore.db import catalog as catalog_db
from feedcore.db import events as events_db
from feedcore.settings import ingest_settings
from feedlocal.progress import progress
from feedlocal.seed import SeedDataset


def load_dataset(conn: psycopg.Connection, dataset: SeedDataset) -> int:
    """Upsert stores, catalog, availability and users, then store the events in ingestion-sized batches.

    Runs in one transaction; returns the number of events newly stored (0 when loaded before).
    """
    stored = 0
    with conn.transaction():
        catalog_db.upsert_stores(conn, dataset.stores)
        catalog_db.upsert_items(conn, dataset.items)
        catalog_db.upsert_availability(conn, dataset.availability)
        catalog_db.upsert_users(conn, dataset.users)
        events_db.ensure_event_partitions(conn, {events_db.month_of(event["occurred_at"]) for event in dataset.events})
        size = ingest_settings().max_events_per_batch
        batches = -(-len(dataset.events) // size)
        for batch in progress(batched(dataset.events, size), batches, "storing events", "batches"):
            stored += len(batch) - len(events_db.store_events(conn, batch).duplicate_ids)
    return stored


def demo_example(conn: psycopg.Connection) -> tuple[str, str, str, float]:
    """For the printed example calls: the seeded user with the most purchases at their home store, that
    store, and the store's most popular item with its shelf price."""
    row = conn.execute(
        """
        WITH shopper AS (
            SELECT u.user_id, u.home_store_id
            FROM users u JOIN events e ON e.user_id = u.user_id AND e.store_id = u.home_store_id
            WHERE e.event_type = 'purchase'
            GROUP BY u.user_id, u.home_store_id
            ORDER BY count(*) DESC, u.user_id
            LIMIT 1
        )
        SELECT s.user_id, s.home_store_id, p.item_id, coalesce(sa.price, i.price)::float8
        FROM shopper s
        JOIN LATERAL (
            SELECT item_id FROM item_popularity WHERE store_id = s.home_store_id ORDER BY raw_score DESC LIMIT 1
        ) p ON true
        JOIN items i ON i.item_id = p.item_id
        JOIN store_availability sa ON sa.store_id = s.home_store_id AND sa.item_id = p.item_id
        """
    ).fetchone()
    if row is None:
        raise RuntimeError("no seeded purchases or scores: run `feedctl seed` and `feedctl recompute` first")
    return row[0], row[1], row[2], row[3]
