"""The contract: request and response models of every endpoint. They drive validation and OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_type_hints
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    Strict,
    with_config,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypedDict

MAX_LINES_PER_PURCHASE = 200

# Identifiers of users, stores, items and orders as the client systems spell them.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]


DECIMAL_PLACES_ERROR = ("decimal_places", "must have at most two decimals")


def has_whole_cents(amount: float) -> bool:
    """multiple_of allows a relative tolerance (it would let 0.010000000001 through, to be rounded in the
    database); an amount of two decimals is its own rounding."""
    return round(amount, 2) == amount


def _whole_cents(amount: float) -> float:
    if not has_whole_cents(amount):
        raise PydanticCustomError(*DECIMAL_PLACES_ERROR)
    return amount


# Money travels as a JSON number with at most two decimals and is exact (numeric) in the database. It is a
# float in between (Decimal validation cost about a millisecond per 500-event batch): every amount of two
# decimals up to the bound converts to the same numeric in PostgreSQL.
Money = Annotated[float, Field(ge=0, le=100_000, multiple_of=0.01), AfterValidator(_whole_cents)]
# The same bounds without the exactness check, which ingestion makes for a whole batch in one pass
# (feedcore.ingestion.service.screen_events) rather than by a Python call per purchase line.
UnitPrice = Annotated[float, Field(ge=0, le=100_000, multiple_of=0.01)]

# Strict: `true` or `2.0` is not a quantity.
Quantity = Annotated[int, Strict(), Field(ge=1, le=999)]
# Feed tracking fields: the feed and section that showed an item, and its position there.
FeedId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Position = Annotated[int, Strict(), Field(ge=0, le=10_000)]


class _IsoTimestamp:
    """An ISO 8601 string with a time zone, validated natively (no Python call per event): a number, or a
    string of digits, would be read as seconds since 1970, so the string must start with a date. The
    instant may carry any offset Python accepts; ingestion moves it to UTC (PostgreSQL reads offsets up to
    ±15:59 only) when it checks the time window, in one pass over the batch."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        iso_string = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=r"^\d{4}-\d\d-\d\d[Tt ]"),
            custom_error_type="timestamp_type",
            custom_error_message="must be an ISO 8601 string with a time zone",
        )
        return core_schema.chain_schema([iso_string, core_schema.datetime_schema(tz_constraint="aware")])

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time"}


Timestamp = Annotated[datetime, _IsoTimestamp]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain the NUL character")
    return value


# Free text (PostgreSQL cannot store NUL): names, catalog labels, tags.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Label = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Tag = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_no_nul)]


REPEATED_ITEM_ERROR = ("repeated_item", "item {item_id} appears more than once; send it once")


def _one_per_item[T](entries: list[T]) -> list[T]:
    """A list in which each item_id appears once (catalog and availability updates; ingestion checks purchase
    lines in its pass over the batch)."""
    seen: set[str] = set()
    for entry in entries:
        if entry.item_id in seen:
            raise PydanticCustomError(*REPEATED_ITEM_ERROR, {"item_id": entry.item_id})
        seen.add(entry.item_id)
    return entries


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(_Contract):
    """One problem with a request, located the way a client would write it (`events[3].items[0].quantity`)."""

    field: str
    message: str
    type: str


# --- events ---------------------------------------------------------------------------------------
# Events are TypedDicts: pydantic-core validates a batch of them in Rust without building a model object per
# event, and serializes them back for the database the same way. Every check of a single field is native;
# the ones that are not (two decimals of a unit price, one line per item, the time window) are made by
# ingestion in one pass over the batch. A field with a default is always present after validation.


@with_config(ConfigDict(extra="forbid"))
class _EventBase(TypedDict):
    event_id: Annotated[UUID, Field(description="Generated by the client; sending the same event again stores it once")]
    user_id: Identifier
    store_id: Identifier
    occurred_at: Annotated[
        Timestamp,
        Field(
            description="When it happened, with a time zone; at most 5 minutes ahead of the server's clock and "
            "not older than the late-event horizon (INGEST_LATE_EVENT_HORIZON_DAYS, 30 by default)"
        ),
    ]


@with_config(ConfigDict(extra="forbid"))
class PurchaseLine(TypedDict):
    item_id: Identifier
    quantity: Annotated[Quantity, Field(default=1)]
    unit_price: Annotated[UnitPrice, Field(description="Price of one unit paid, in the store's currency")]


@with_config(ConfigDict(extra="forbid"))
class PurchaseEvent(_EventBase):
    """A completed order."""

    type: Literal["purchase"]
    order_id: Identifier
    items: Annotated[list[PurchaseLine], Field(min_length=1, max_length=MAX_LINES_PER_PURCHASE)]


@with_config(ConfigDict(extra="forbid"))
class AddToCartEvent(_EventBase):
    """An item put in the cart; from a feed, it carries the tracking fields of the item."""

    type: Literal["add_to_cart"]
    item_id: Identifier
    quantity: Annotated[Quantity, Field(default=1)]
    feed_id: Annotated[FeedId | None, Field(default=None)]
    section: Annotated[Identifier | None, Field(default=None)]
    position: Annotated[Position | None, Field(default=None)]


@with_config(ConfigDict(extra="forbid"))
class RemoveFromCartEvent(_EventBase):
    type: Literal["remove_from_cart"]
    item_id: Identifier
    quantity: Annotated[Quantity, Field(default=1)]


@with_config(ConfigDict(extra="forbid"))
class ClickEvent(_EventBase):
    """A tap on an item; from a feed, it carries the tracking fields of the item it tapped."""

    type: Literal["click"]
    item_id: Identifier
    feed_id: Annotated[FeedId | None, Field(default=None)]
    section: Annotated[Identifier | None, Field(default=None)]
    position: Annotated[Position | None, Field(default=None)]


@with_config(ConfigDict(extra="forbid"))
class ImpressionEvent(_EventBase):
    """An item of a feed was shown on screen."""

    type: Literal["impression"]
    item_id: Identifier
    feed_id: FeedId
    section: Identifier
    position: Position


@with_config(ConfigDict(extra="forbid"))
class HideEvent(_EventBase):
    """The user said "not interested": the item leaves their feed."""

    type: Literal["hide"]
    item_id: Identifier


EVENT_MODELS = (PurchaseEvent, AddToCartEvent, RemoveFromCartEvent, ClickEvent, ImpressionEvent, HideEvent)
ValidEvent = Union[EVENT_MODELS]  # noqa: UP007 (a tuple of models needs Union)
Event = Annotated[ValidEvent, Field(discriminator="type")]
EVENT_TYPES: tuple[str, ...] = tuple(get_args(get_type_hints(model)["type"])[0] for model in EVENT_MODELS)


class UnmatchedEvent:
    """An element of a batch that does not match the contract, kept as sent so that the others can be stored
    and it reported by its index (its errors are found again only for it)."""

    __slots__ = ("sent",)

    def __init__(self, sent: Any) -> None:
        self.sent = sent

    def __repr__(self) -> str:
        return f"UnmatchedEvent({self.sent!r:.100})"


class EventBatch(_Contract):
    """A batch as clients send it. Events that do not match the contract are kept as sent, so that the
    others can be stored and each bad one reported by its index."""

    # Each element is the validated dict of an event, or an UnmatchedEvent.

    events: list[
        Annotated[
            Event | SkipJsonSchema[Annotated[Any, PlainValidator(UnmatchedEvent)]], Field(union_mode="left_to_right")
        ]
    ] = Field(min_length=1, description="At most INGEST_MAX_EVENTS_PER_BATCH events and INGEST_MAX_BODY_BYTES bytes")

    def __repr__(self) -> str:
        # Powertools formats route arguments into a debug message even when debug logging is off; the
        # default repr of 500 events costs more than storing them.
        return f"EventBatch(<{len(self.events)} events>)"


class EventRejection(_Contract):
    index: int = Field(description="Position of the event in the request's `events`")
    event_id: str | None = Field(description="The event's event_id, when it had one")
    errors: list[FieldError]


class IngestResult(_Contract):
    received: int = Field(description="Events in the request")
    accepted: int = Field(description="Events newly stored, committed before this answer was sent")
    duplicates: int = Field(description="Events whose event_id was already stored, or repeated in the batch")
    rejected: int = Field(description="Events not stored because they break the contract; see `rejections`")
    unknown_items: int = Field(description="Accepted events or purchase lines naming an item not in the catalog")
    duplicate_indexes: list[int] = Field(description="Positions of the duplicate events")
    rejections: list[EventRejection]


# --- catalog ----------------------------------------------------------------------------------------


class Store(_Contract):
    store_id: Identifier
    name: Name
    region: Label | None = None


class CatalogItem(_Contract):
    item_id: Identifier
    name: Name
    department: Label
    aisle: Label
    brand: Label | None = None
    price: Money
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    active: bool = True


class AvailabilityEntry(_Contract):
    item_id: Identifier
    available: bool = True
    price: Money | None = Field(default=None, description="The store's shelf price when it differs")


class StoreAvailability(AvailabilityEntry):
    """An availability entry with its store, as stored."""

    store_id: Identifier


class CatalogUpdate(_Contract):
    items: Annotated[list[CatalogItem], AfterValidator(_one_per_item)] = Field(
        min_length=1, description="At most INGEST_MAX_CATALOG_ITEMS_PER_REQUEST"
    )


class AvailabilityUpdate(_Contract):
    store_name: Name | None = Field(default=None, description="Names the store when it is new (its id otherwise)")
    items: Annotated[list[AvailabilityEntry], AfterValidator(_one_per_item)] = Field(
        min_length=1, description="At most INGEST_MAX_CATALOG_ITEMS_PER_REQUEST"
    )


class CatalogResult(_Contract):
    upserted: int = Field(description="Rows inserted or updated")


class UserDeletion(_Contract):
    user_id: str
    events_deleted: int
    scores_deleted: int


class User(_Contract):
    user_id: Identifier
    home_store_id: Identifier | None = None


# --- feed -------------------------------------------------------------------------------------------

Fallback = Literal["new_user", "global", "cached_popular"]


class ItemDebug(_Contract):
    """Why the item ranks where it does (with `debug=true`)."""

    source: str = Field(description="The candidate source that proposed it")
    score: float = Field(description="Its score in the section: the sum of the contributions")
    contributions: dict[str, float] = Field(description="signal → weight × signal normalized in the section")
    backfill: bool = Field(description="Added from popular items because the section had too few")


class FeedItem(_Contract):
    item_id: str
    name: str
    brand: str | None
    department: str
    aisle: str
    price: Money
    reason: str = Field(description="Why the item is in this section, for display")
    tracking: str = Field(
        description="`feed_id:section:position`: send its parts as feed_id, section and position with the "
        "impression, click and add_to_cart events of this item"
    )
    debug: ItemDebug | None = Field(default=None, description="Only with debug=true")


class FeedSection(_Contract):
    id: str
    title: str
    items: list[FeedItem]


class RemovedCandidate(_Contract):
    item_id: str
    source: str
    filter: str = Field(description="The filter that removed it")


class Feed(_Contract):
    feed_id: str = Field(description="Identifies this feed; events about its items carry it")
    user_id: str
    store_id: str
    generated_at: datetime
    experiment: str | None = Field(description="The running ranking experiment, if any")
    variant: str = Field(description="The ranking config variant this user is assigned to")
    fallback: Fallback | None = Field(
        description="`new_user`: no history yet, popular and trending lists served; `global`: unknown store, "
        "lists over all stores; `cached_popular`: the database was unavailable (see `degraded`)"
    )
    degraded: bool = Field(description="true when served from the container's cache because the database failed")
    sections: list[FeedSection] = Field(description="This page's sections, in display order")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    removed: list[RemovedCandidate] | None = Field(
        default=None, description="Only with debug=true on the first page: candidates filters removed"
    )
