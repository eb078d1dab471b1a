"""Catalog and store availability updates from the merchandising systems (admin only)."""

from __future__ import annotations

import psycopg

from feedcore.api.catalog_models import AvailabilityUpdate, CatalogResult, CatalogUpdate, StoreAvailability
from feedcore.api.models import FieldError
from feedcore.db import catalog as catalog_db
from feedcore.db import feed as feed_db
from feedcore.db.connection import run
from feedcore.errors import InvalidRequest, RequestTooLarge
from feedcore.observability import logger
from feedcore.settings import ingest_settings


def _check_size(count: int) -> None:
    limit = ingest_settings().max_catalog_items_per_request
    if count > limit:
        raise RequestTooLarge("items", count, limit, field="items")


def upsert_catalog(update: CatalogUpdate) -> CatalogResult:
    """Insert new products and update existing ones, all or nothing (the next recompute packs the shelves)."""
    _check_size(len(update.items))

    # Not the store shelves: the catalog's version moves with this transaction, so every pack is over an older
    # catalog and the feed ranks each store from its rows until the next recompute packs them again. Packing
    # every store here took ~65 ms a store of 20,000 items, past the statement timeout at 100 stores.
    upserted = run(lambda conn: catalog_db.upsert_items(conn, update.items))
    logger.info("catalog updated", extra={"items": upserted})
    return CatalogResult(upserted=upserted)


def update_availability(store_id: str, update: AvailabilityUpdate) -> CatalogResult:
    """Set what the store carries and its shelf prices, all or nothing; every item must be in the catalog."""
    _check_size(len(update.items))
    entries = [
        StoreAvailability(store_id=store_id, item_id=entry.item_id, available=entry.available, price=entry.price)
        for entry in update.items
    ]

    def apply(conn: psycopg.Connection) -> int:
        unknown = catalog_db.unknown_item_ids(conn, [entry.item_id for entry in entries])
        if unknown:
            raise InvalidRequest(
                f"{len(unknown)} items are not in the catalog; nothing was changed",
                [
                    FieldError(field=f"items[{index}].item_id", message="not in the catalog", type="unknown_item")
                    for index, entry in enumerate(entries)
                    if entry.item_id in unknown
                ],
            )
        catalog_db.ensure_store(conn, store_id, update.store_name)
        upserted = catalog_db.upsert_availability(conn, entries)
        feed_db.pack_store_shelves(conn, [store_id])  # the feed reads the store's packed shelf
        return upserted

    upserted = run(apply)
    logger.info("availability updated", extra={"store_id": store_id, "items": upserted})
    return CatalogResult(upserted=upserted)
