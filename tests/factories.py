"""Small, explicit test data: a two-store catalog and event payloads as clients send them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from pydantic import TypeAdapter

from feedcore.api.catalog_models import CatalogItem, Store, StoreAvailability
from feedcore.api.event_fast_path import event_structs
from feedcore.api.event_models import Event
from feedcore.db import catalog as catalog_db
from feedcore.db.connection import run
from feedcore.db.events import MissingPartition, ensure_event_partitions, month_of, store_events

STORE = "store-a"
OTHER_STORE = "store-b"
NOW = datetime.now(UTC).replace(microsecond=0)
EVENT = TypeAdapter(Event)

ITEMS = [
    CatalogItem(
        item_id="milk",
        name="Whole Milk 1 gal",
        department="Dairy & Eggs",
        aisle="Milk",
        brand="Dairy Farm",
        price=3.49,
    ),
    CatalogItem(
        item_id="eggs",
        name="Large Eggs 12 ct",
        department="Dairy & Eggs",
        aisle="Eggs",
        brand="Happy Hen",
        price=4.29,
    ),
    CatalogItem(
        item_id="coffee",
        name="Ground Coffee 12 oz",
        department="Breakfast",
        aisle="Coffee",
        brand="Roastery",
        price=8.99,
    ),
    CatalogItem(
        item_id="bananas",
        name="Bananas 1 lb",
        department="Produce",
        aisle="Fresh Fruit",
        brand=None,
        price=0.59,
    ),
    CatalogItem(
        item_id="wine",
        name="Cabernet Sauvignon 750 ml",
        department="Beer & Wine",
        aisle="Red Wine",
        brand="Valley",
        price=12.99,
        tags=["alcohol"],
    ),
    CatalogItem(
        item_id="discontinued",
        name="Old Cereal",
        department="Breakfast",
        aisle="Cereal",
        brand="Gone",
        price=2.99,
        active=False,
    ),
    CatalogItem(
        item_id="only-b",
        name="Sourdough Loaf",
        department="Bakery",
        aisle="Bread",
        brand="Bakehouse",
        price=5.49,
    ),
]


def create_catalog(conn: psycopg.Connection) -> None:
    """Two stores; store-a sells everything but `only-b` (which store-b sells), with its own milk price."""
    catalog_db.upsert_stores(conn, [Store(store_id=STORE, name="Store A"), Store(store_id=OTHER_STORE, name="B")])
    catalog_db.upsert_items(conn, ITEMS)
    availability = [
        StoreAvailability(
            store_id=STORE,
            item_id=item.item_id,
            available=item.item_id != "only-b",
            price=3.19 if item.item_id == "milk" else None,
        )
        for item in ITEMS
    ] + [StoreAvailability(store_id=OTHER_STORE, item_id=item.item_id) for item in ITEMS]
    catalog_db.upsert_availability(conn, availability)


def event(
    event_type: str, user_id: str = "user-1", *, store_id: str = STORE, at: datetime | None = None, **fields: Any
) -> dict[str, Any]:
    """An event as a client sends it."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "user_id": user_id,
        "store_id": store_id,
        "occurred_at": (at or NOW - timedelta(minutes=1)).isoformat(),
        **fields,
    }


def purchase(user_id: str = "user-1", items: tuple[str, ...] = ("milk",), **kwargs: Any) -> dict[str, Any]:
    return event(
        "purchase",
        user_id,
        order_id=f"order-{uuid.uuid4().hex[:8]}",
        items=[{"item_id": item_id, "quantity": 1, "unit_price": 1.5} for item_id in items],
        **kwargs,
    )


def record(*events: dict[str, Any]) -> None:
    """Store events as given, without ingestion's time window: to set up a history."""
    valid = [EVENT.validate_python(event) for event in events]
    months = {month_of(event["occurred_at"]) for event in valid}
    structs = event_structs(valid)
    run(lambda conn: ensure_event_partitions(conn, months))
    try:
        run(lambda conn: store_events(conn, structs))
    except MissingPartition:  # another database than the partition cache knew (it has been cleared)
        run(lambda conn: ensure_event_partitions(conn, months))
        run(lambda conn: store_events(conn, structs))


def oversized_batch() -> str:
    return json.dumps({"events": [event("click", item_id="milk") for _ in range(10_000)]})


# Bodies the events route must answer with a problem+json 4xx (status, and the field it names).
BAD_INPUT: list[tuple[str, int, str]] = [
    ('{"events": [', 400, "body"),
    ("not json at all", 400, "body"),
    ('{"events": [' + "9" * 5000 + "]}", 400, "body"),
    ("[" * 100_000, 400, "body"),
    (json.dumps([]), 422, "body"),
    (json.dumps({"events": []}), 422, "events"),
    (json.dumps({"events": "everything"}), 422, "events"),
    (json.dumps({"wrong": []}), 422, "events"),
    (json.dumps({"events": [event("teleport", item_id="milk")]}), 422, "events[0].type"),
    (json.dumps({"events": [{k: v for k, v in event("click", item_id="milk").items() if k != "user_id"}]}),
     422, "events[0].user_id"),
    (json.dumps({"events": [event("click", item_id=42)]}), 422, "events[0].item_id"),
    (json.dumps({"events": [event("click", item_id="x" * 10_000)]}), 422, "events[0].item_id"),
    (json.dumps({"events": [event("click", item_id="milk", section="\u0000")]}), 422, "events[0].section"),
    (json.dumps({"events": [event("add_to_cart", item_id="milk", quantity=-3)]}), 422, "events[0].quantity"),
    (json.dumps({"events": [event("add_to_cart", item_id="milk", quantity=True)]}), 422, "events[0].quantity"),
    (json.dumps({"events": [purchase() | {"items": [{"item_id": "milk", "quantity": 1, "unit_price": -1}]}]}),
     422, "events[0].items[0].unit_price"),
    (json.dumps({"events": [purchase() | {"items": [{"item_id": "milk", "quantity": 1, "unit_price": 1e12}]}]}),
     422, "events[0].items[0].unit_price"),
    (json.dumps({"events": [purchase() | {"items": [{"item_id": "milk", "quantity": 1, "unit_price": True}]}]}),
     422, "events[0].items[0].unit_price"),
    (json.dumps({"events": [purchase() | {"items": [{"item_id": "milk", "quantity": 1, "unit_price": "1_000"}]}]}),
     422, "events[0].items[0].unit_price"),
    (json.dumps({"events": [purchase(items=("milk", "milk"))]}), 422, "events[0].items"),
    (json.dumps({"events": [event("click", item_id="milk", occurred_at="2026-11-26T10:00:00")]}),
     422, "events[0].occurred_at"),
    (json.dumps({"events": [event("click", item_id="milk", occurred_at=1_700_000_000)]}),
     422, "events[0].occurred_at"),
    (json.dumps({"events": [event("click", item_id="milk", occurred_at="1795678941")]}),
     422, "events[0].occurred_at"),
    (json.dumps({"events": [event("click", item_id="milk", at=NOW + timedelta(days=400))]}),
     422, "events[0].occurred_at"),
    (json.dumps({"events": [event("click", item_id="milk", at=NOW - timedelta(days=31))]}),
     422, "events[0].occurred_at"),
    # Instants whose offset takes them past year 1 or year 9999 in UTC.
    (json.dumps({"events": [event("click", item_id="milk", occurred_at="0001-01-01T00:00:00+01:00")]}),
     422, "events[0].occurred_at"),
    (json.dumps({"events": [event("click", item_id="milk", occurred_at="9999-12-31T23:59:59-01:00")]}),
     422, "events[0].occurred_at"),
    (json.dumps({"events": [event("click", item_id="milk", event_id="not-a-uuid")]}), 422, "events[0].event_id"),
    (oversized_batch(), 413, "body"),
    (json.dumps({"events": [purchase(items=tuple(f"item-{i:05d}" for i in range(199)))] * 100}), 413, "body"),
    ('{"events": [' + " " * 1_100_000, 413, "body"),
]  # fmt: skip
BAD_INPUT_IDS = [
    "truncated-json", "not-json", "huge-number", "deep-nesting", "array-body", "empty-batch", "events-not-a-list",
    "missing-events", "unknown-type", "missing-user", "wrong-type", "huge-string", "nul-character",
    "negative-quantity", "boolean-quantity", "negative-price", "huge-price", "boolean-price",
    "string-price", "repeated-line", "naive-timestamp",
    "numeric-timestamp", "digit-string-timestamp", "far-future", "older-than-horizon", "year-1-ahead-of-utc",
    "year-9999-behind-utc", "bad-uuid",
    "10000-events", "over-1mb", "over-1mb-unread",
]  # fmt: skip
