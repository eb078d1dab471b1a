"""A compiled fast path for the usual events body, every event well formed: msgspec decodes it into Structs that
mirror feedcore.api.event_models, and the checks msgspec would make by a Python call per string (patterns, the
instant) are made over the whole batch at once. It only ever says yes or "ask pydantic": any body it does not
accept is validated by EventBatch, the published contract and the source of every error message. The Structs are
also the form in which ingestion screens and stores events (those EventBatch validated are turned into them), so
the usual batch is stored without a dict or a datetime made per event.

What it accepts is a subset of what EventBatch accepts, read into the same events (tests/unit/test_contract.py
checks both over the bad-input table and a generated sample): ids in their canonical spelling, and instants
written as RFC 3339 (`T`, seconds, up to six decimals, `Z` or an offset).
"""

from __future__ import annotations

import re
from datetime import datetime
from operator import attrgetter
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from feedcore.api.event_models import ValidEvent
from feedcore.api.models import IDENTIFIER_PATTERN, MAX_LINES_PER_PURCHASE, all_whole_cents

# The Structs live as long as their batch and hold no cycles: gc=False keeps ~1,000 of them a batch out of the
# collector's young generation (2.01–2.12 ms against 2.11–2.56 ms a batch, 9 runs).
# Bounds msgspec checks natively; patterns and the decimals of a price are checked below, a batch at a time.
_Quantity = Annotated[int, Meta(ge=1, le=999)]
_Position = Annotated[int, Meta(ge=0, le=10_000)]
_UnitPrice = Annotated[float, Meta(ge=0, le=100_000)]


class _EventStruct(Struct, forbid_unknown_fields=True, tag_field="type", gc=False):
    event_id: str
    user_id: str
    store_id: str
    occurred_at: str


class PurchaseLineStruct(Struct, forbid_unknown_fields=True, gc=False):
    item_id: str
    unit_price: _UnitPrice
    quantity: _Quantity = 1


class PurchaseStruct(_EventStruct, tag="purchase"):
    order_id: str
    items: Annotated[list[PurchaseLineStruct], Meta(min_length=1, max_length=MAX_LINES_PER_PURCHASE)]


class AddToCartStruct(_EventStruct, tag="add_to_cart"):
    item_id: str
    quantity: _Quantity = 1
    feed_id: str | None = None
    section: str | None = None
    position: _Position | None = None


class RemoveFromCartStruct(_EventStruct, tag="remove_from_cart"):
    item_id: str
    quantity: _Quantity = 1


class ClickStruct(_EventStruct, tag="click"):
    item_id: str
    feed_id: str | None = None
    section: str | None = None
    position: _Position | None = None


class ImpressionStruct(_EventStruct, tag="impression"):
    item_id: str
    feed_id: str
    section: str
    position: _Position


class HideStruct(_EventStruct, tag="hide"):
    item_id: str


FAST_EVENT_STRUCTS = (PurchaseStruct, AddToCartStruct, RemoveFromCartStruct, ClickStruct, ImpressionStruct, HideStruct)


EventStruct = PurchaseStruct | AddToCartStruct | RemoveFromCartStruct | ClickStruct | ImpressionStruct | HideStruct
_EVENTS = list[EventStruct]


class _Batch(Struct, forbid_unknown_fields=True):
    events: Annotated[_EVENTS, Meta(min_length=1)]


_DECODER = msgspec.json.Decoder(_Batch)

# Each pattern matches a whole batch of values, one per line (_each_matches refuses a value holding a newline).
# ASCII only, as the contract's patterns (Python's \d would take other scripts' digits).
_IDENTIFIERS = re.compile(rf"(?:{IDENTIFIER_PATTERN}\n)*")
_FEED_IDS = re.compile(r"(?:[A-Za-z0-9_.:\-]{1,64}\n)*")
_EVENT_IDS = re.compile(r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n)*")
_INSTANTS = re.compile(
    r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\n)*"
)
_EVENT_ID = attrgetter("event_id")
_OCCURRED_AT = attrgetter("occurred_at")
_USER_ID = attrgetter("user_id")
_STORE_ID = attrgetter("store_id")
_ITEM_ID = attrgetter("item_id")
_ORDER_ID = attrgetter("order_id")
_SECTION = attrgetter("section")
_FEED_ID = attrgetter("feed_id")
_UNIT_PRICE = attrgetter("unit_price")
_TRACKED = (ClickStruct, AddToCartStruct, ImpressionStruct)


def _each_matches(pattern: re.Pattern[str], values: list[str]) -> bool:
    """Whether every one of `values` matches `pattern`, in one match over the values joined by newlines. A value
    holding a newline itself would pass as two: the count of newlines rules that out."""
    text = "\n".join(values) + "\n" if values else ""
    return text.count("\n") == len(values) and pattern.fullmatch(text) is not None


class UsualEventBatch:
    """A batch read by the fast path: its events as Structs and their instants. Ingestion stores it from the
    Structs themselves (feedcore.ingestion.service); `events` is the batch as EventBatch holds it, made only when
    it is asked for (a batch ingestion must screen event by event, a caller who is not an admin)."""

    __slots__ = ("_events", "instants", "structs")

    def __init__(self, structs: list[EventStruct], instants: list[datetime]) -> None:
        self.structs = structs
        self.instants = instants  # occurred_at of each event, with its offset
        self._events: list[ValidEvent] | None = None

    @property
    def events(self) -> list[ValidEvent]:
        if self._events is None:
            events: list[ValidEvent] = msgspec.to_builtins(self.structs)
            for event, instant in zip(events, self.instants, strict=True):
                event["occurred_at"] = instant
            self._events = events
        return self._events

    def __repr__(self) -> str:  # Powertools formats route arguments into a debug message (see EventBatch)
        return f"UsualEventBatch(<{len(self.structs)} events>)"


def usual_event_batch(body: str) -> UsualEventBatch | None:
    """The batch of `body` when every event is well formed in the spelling this path reads (then its `events`
    are those EventBatch would make); None otherwise, for EventBatch to validate it."""
    try:
        structs = _DECODER.decode(body).events
    except msgspec.MsgspecError:
        return None
    # Each field's values gathered by loops of C (comprehensions only to split the batch by type).
    purchases = [event for event in structs if type(event) is PurchaseStruct]
    lines = [line for purchase in purchases for line in purchase.items]
    single_items = [event for event in structs if type(event) is not PurchaseStruct]
    tracked = [event for event in single_items if type(event) in _TRACKED]
    identifiers = [
        *map(_USER_ID, structs),
        *map(_STORE_ID, structs),
        *map(_ITEM_ID, single_items),
        *map(_ITEM_ID, lines),
        *map(_ORDER_ID, purchases),
        *[section for section in map(_SECTION, tracked) if section is not None],
    ]
    feed_ids = [feed_id for feed_id in map(_FEED_ID, tracked) if feed_id is not None]
    instants = list(map(_OCCURRED_AT, structs))
    if not (
        _each_matches(_IDENTIFIERS, identifiers)
        and _each_matches(_FEED_IDS, feed_ids)
        and _each_matches(_EVENT_IDS, list(map(_EVENT_ID, structs)))
        and _each_matches(_INSTANTS, instants)
        # The decimals of a price as screening checks them (every price of whole cents up to the bound is a
        # multiple of 0.01 to pydantic too); pydantic names the others.
        and all_whole_cents(list(map(_UNIT_PRICE, lines)))
    ):
        return None
    try:
        return UsualEventBatch(structs, list(map(datetime.fromisoformat, instants)))
    except ValueError:  # a day the calendar does not have
        return None


def event_structs(events: list[ValidEvent]) -> list[EventStruct]:
    """The Structs of validated events (EventBatch's dicts), in which form ingestion stores them."""
    return msgspec.convert([{**event, "occurred_at": event["occurred_at"].isoformat()} for event in events], _EVENTS)
