"""The contract: the types every endpoint shares and the feed's response models. They drive validation and
OpenAPI. The events' and the catalog's models are in feedcore.api.event_models and feedcore.api.catalog_models,
which the feed function does not import (building models is a share of its cold start)."""

# Annotations are evaluated as each class is made (no `from __future__ import annotations`): pydantic would compile
# and evaluate each field's from its text, a share of the feed function's cold start (README: Measured > Cold start).

from datetime import datetime
from itertools import repeat
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

MAX_LINES_PER_PURCHASE = 200

# Identifiers of users, stores, items and orders as the client systems spell them: a letter or digit, then up to
# 63 more of these characters. IDENTIFIER_PATTERN is the whole identifier, for `fullmatch` (model score files, the
# ingestion fast path).
IDENTIFIER_CHARACTERS = r"A-Za-z0-9_.:\-"
MAX_IDENTIFIER_LENGTH = 64
IDENTIFIER_PATTERN = rf"[A-Za-z0-9][{IDENTIFIER_CHARACTERS}]{{0,{MAX_IDENTIFIER_LENGTH - 1}}}"
Identifier = Annotated[
    str, Field(min_length=1, max_length=MAX_IDENTIFIER_LENGTH, pattern=rf"^[A-Za-z0-9][{IDENTIFIER_CHARACTERS}]*$")
]


DECIMAL_PLACES_ERROR = ("decimal_places", "must have at most two decimals")


def has_whole_cents(amount: float) -> bool:
    """multiple_of allows a relative tolerance (it would let 0.010000000001 through, to be rounded in the
    database); an amount of two decimals is its own rounding."""
    return round(amount, 2) == amount


def all_whole_cents(amounts: list[float]) -> bool:
    """has_whole_cents of every amount, rounded in one loop of C (ingestion checks a whole batch's prices)."""
    return list(map(round, amounts, repeat(2))) == amounts


def _whole_cents(amount: float) -> float:
    if not has_whole_cents(amount):
        raise PydanticCustomError(*DECIMAL_PLACES_ERROR)
    return amount


# Money travels as a JSON number with at most two decimals and is exact (numeric) in the database. It is a
# float in between (Decimal validation cost about a millisecond per 500-event batch): every amount of two
# decimals up to the bound converts to the same numeric in PostgreSQL. Strict: `true` (read as 1) or a string
# such as "1_000" (read as 1000) is not an amount.
Money = Annotated[float, Strict(), Field(ge=0, le=100_000, multiple_of=0.01), AfterValidator(_whole_cents)]
# Strict: `true` or `2.0` is not a quantity.
Quantity = Annotated[int, Strict(), Field(ge=1, le=999)]
# Feed tracking fields: the feed and section that showed an item, and its position there.
FeedId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Position = Annotated[int, Strict(), Field(ge=0, le=10_000)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain the NUL character")
    return value


# Free text (PostgreSQL cannot store NUL): names, catalog labels.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Label = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
# Catalog tags in the alphabet of the feed's comma-separated `exclude_tags`, so every tag can be excluded. Tags are
# case-insensitive: stored in lower case (migration 0114 lowered older ones), and the feed lowers `exclude_tags`.
TAG_PATTERN = r"[A-Za-z0-9_\-]+"
Tag = Annotated[str, Field(min_length=1, max_length=40, pattern=f"^{TAG_PATTERN}$"), AfterValidator(str.lower)]


REPEATED_ITEM_ERROR = ("repeated_item", "item {item_id} appears more than once; send it once")


def one_per_item[T](entries: list[T]) -> list[T]:
    """A list in which each item_id appears once (catalog and availability updates; ingestion checks purchase
    lines in its pass over the batch)."""
    seen: set[str] = set()
    for entry in entries:
        if entry.item_id in seen:
            raise PydanticCustomError(*REPEATED_ITEM_ERROR, {"item_id": entry.item_id})
        seen.add(entry.item_id)
    return entries


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(Contract):
    """One problem with a request, located the way a client would write it (`events[3].items[0].quantity`)."""

    field: str
    message: str
    type: str


class EventRejection(Contract):
    index: int = Field(description="Position of the event in the request's `events`")
    event_id: str | None = Field(description="The event's event_id, when it had one")
    errors: list[FieldError]


class Problem(Contract):
    """Every error answer: an RFC 9457 problem+json document. feedcore.api.problems writes each answer from this
    model and publishes it in the OpenAPI document. The optional members are left out of an answer that has none,
    never sent as null: they are published as optional, not nullable."""

    model_config = ConfigDict(defer_build=True)  # built on the first error answer, not in the cold start

    type: str = Field(description="A URI naming the kind of problem")
    title: str = Field(description="The HTTP status phrase")
    status: int
    detail: str = Field(description="What went wrong, for a person to read")
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        default=None,
        description="The fields at fault, located as a client writes them (`events[3].items[0].quantity`): the "
        "first 10 of the request, or of each rejected event",
    )
    rejections: list[EventRejection] | SkipJsonSchema[None] = Field(
        default=None, description="422 to a batch in which no event is valid: each event's errors, by its index"
    )
    limit: int | SkipJsonSchema[None] = Field(default=None, description="413: the most the request may hold")
    feed_id: str | SkipJsonSchema[None] = Field(default=None, description="410: the feed whose snapshot expired")


# --- feed -------------------------------------------------------------------------------------------
# The feed service writes the page's JSON itself (feedcore.feed.service): these models publish it in the OpenAPI
# document, each built when first read (the route's responses on its first request, the document, tests).

Fallback = Literal["new_user", "global", "cached_popular"]


class ItemDebug(Contract):
    """Why the item ranks where it does (with `debug=true`)."""

    model_config = ConfigDict(defer_build=True)

    source: str = Field(description="The candidate source that proposed it")
    score: float = Field(description="Its score in the section: the sum of the contributions")
    contributions: dict[str, float] = Field(description="signal → weight × signal normalized in the section")
    backfill: bool = Field(description="Added from popular items because the section had too few")


class FeedItem(Contract):
    model_config = ConfigDict(defer_build=True)

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


class FeedSection(Contract):
    model_config = ConfigDict(defer_build=True)

    id: str
    title: str
    items: list[FeedItem]


class RemovedCandidate(Contract):
    model_config = ConfigDict(defer_build=True)

    item_id: str
    source: str
    filter: str = Field(description="The filter that removed it")


class Feed(Contract):
    model_config = ConfigDict(defer_build=True)

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
