"""The contract of the catalog, availability and user endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from feedcore.api.models import Contract, Identifier, Label, Money, Name, Tag, one_per_item

# --- catalog ----------------------------------------------------------------------------------------


class Store(Contract):
    store_id: Identifier
    name: Name
    region: Label | None = None


class CatalogItem(Contract):
    item_id: Identifier
    name: Name
    department: Label
    aisle: Label
    brand: Label | None = None
    price: Money
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    active: bool = True


class AvailabilityEntry(Contract):
    item_id: Identifier
    available: bool = True
    price: Money | None = Field(default=None, description="The store's shelf price when it differs")


class StoreAvailability(AvailabilityEntry):
    """An availability entry with its store, as stored."""

    store_id: Identifier


class CatalogUpdate(Contract):
    items: Annotated[list[CatalogItem], AfterValidator(one_per_item)] = Field(
        min_length=1, description="At most INGEST_MAX_CATALOG_ITEMS_PER_REQUEST"
    )


class AvailabilityUpdate(Contract):
    store_name: Name | None = Field(default=None, description="Names the store when it is new (its id otherwise)")
    items: Annotated[list[AvailabilityEntry], AfterValidator(one_per_item)] = Field(
        min_length=1, description="At most INGEST_MAX_CATALOG_ITEMS_PER_REQUEST"
    )


class CatalogResult(Contract):
    upserted: int = Field(description="Rows inserted or updated")


class UserDeletion(Contract):
    user_id: str
    events_deleted: int
    scores_deleted: int


class User(Contract):
    user_id: Identifier
    home_store_id: Identifier | None = None
