"""Stores, catalog items, per-store availability and users."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from feedcore.api.catalog_models import CatalogItem, Store, StoreAvailability, User


def upsert_stores(conn: psycopg.Connection, stores: Sequence[Store]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO stores (store_id, name, region) VALUES (%s, %s, %s)
            ON CONFLICT (store_id) DO UPDATE SET name = excluded.name, region = excluded.region
            """,
            [(s.store_id, s.name, s.region) for s in stores],
        )


def ensure_store(conn: psycopg.Connection, store_id: str, name: str | None) -> None:
    """Create the store if it is new (named `name`, or its id); rename it when `name` is given."""
    conn.execute(
        """
        INSERT INTO stores (store_id, name) VALUES (%(store_id)s, coalesce(%(name)s, %(store_id)s))
        ON CONFLICT (store_id) DO UPDATE SET name = coalesce(%(name)s, stores.name)
        """,
        {"store_id": store_id, "name": name},
    )


def upsert_items(conn: psycopg.Connection, items: Sequence[CatalogItem]) -> int:
    """Insert or update catalog items, in item_id order (no deadlock between overlapping batches)."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO items (item_id, name, department, aisle, brand, price, tags, active)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (item_id) DO UPDATE SET
                name = excluded.name, department = excluded.department, aisle = excluded.aisle,
                brand = excluded.brand, price = excluded.price, tags = excluded.tags,
                active = excluded.active, updated_at = now()
            """,
            [
                (i.item_id, i.name, i.department, i.aisle, i.brand, i.price, list(i.tags), i.active)
                for i in sorted(items, key=lambda i: i.item_id)
            ],
        )
    return len(items)


def unknown_item_ids(conn: psycopg.Connection, item_ids: Sequence[str]) -> set[str]:
    """The ids among `item_ids` that the catalog does not hold."""
    rows = conn.execute(
        "SELECT id FROM unnest(%s::text[]) AS given (id) WHERE NOT EXISTS (SELECT 1 FROM items WHERE item_id = id)",
        (list(item_ids),),
    ).fetchall()
    return {row[0] for row in rows}


def upsert_availability(conn: psycopg.Connection, entries: Sequence[StoreAvailability]) -> int:
    """Insert or update what stores carry and at what shelf price, in key order."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO store_availability (store_id, item_id, available, price) VALUES (%s, %s, %s, %s)
            ON CONFLICT (store_id, item_id) DO UPDATE SET
                available = excluded.available, price = excluded.price, updated_at = now()
            """,
            [
                (a.store_id, a.item_id, a.available, a.price)
                for a in sorted(entries, key=lambda a: (a.store_id, a.item_id))
            ],
        )
    return len(entries)


def upsert_users(conn: psycopg.Connection, users: Sequence[User]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO users (user_id, home_store_id) VALUES (%s, %s)
            ON CONFLICT (user_id) DO UPDATE SET home_store_id = excluded.home_store_id
            """,
            [(u.user_id, u.home_store_id) for u in users],
        )


def delete_user(conn: psycopg.Connection, user_id: str) -> None:
    conn.execute("DELETE FROM users WHERE user_id = %s", (user_id,))
