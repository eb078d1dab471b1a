"""Store a batch of events exactly once and say what happened to each of them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter, itemgetter
from time import perf_counter
from typing import Any

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import TypeAdapter, ValidationError

from feedcore.api.event_fast_path import EventStruct, PurchaseStruct, UsualEventBatch, event_structs
from feedcore.api.event_models import Event, EventBatch, IngestResult, UnmatchedEvent, ValidEvent
from feedcore.api.field_errors import field_errors
from feedcore.api.models import (
    DECIMAL_PLACES_ERROR,
    REPEATED_ITEM_ERROR,
    EventRejection,
    FieldError,
    all_whole_cents,
    has_whole_cents,
)
from feedcore.db import events as events_db
from feedcore.db.connection import run
from feedcore.db.events import month_of, next_month
from feedcore.errors import MAX_FIELD_ERRORS, EventsRejected, RequestTooLarge
from feedcore.observability import add_metrics, logger, metrics
from feedcore.settings import IngestSettings, ingest_settings

_EVENT = TypeAdapter(Event)
_OCCURRED_AT = itemgetter("occurred_at")
_TZINFO = attrgetter("tzinfo")
_UNIT_PRICE = itemgetter("unit_price")
# PostgreSQL reads UTC offsets below ±16 hours (Python accepts up to ±23:59).
_POSTGRES_OFFSET_LIMIT = timedelta(hours=16)


class CatalogItemCache:
    """The item ids this container has found in the catalog, so that each batch looks up only the others.

    Items are never deleted from the catalog (they become inactive), so an id found once stays found; ids
    not found are looked up again in every batch, since the catalog may have gained them. Bounded: it starts
    over when full (INGEST_CATALOG_ITEM_CACHE_SIZE).
    """

    def __init__(self) -> None:
        self._found: set[str] = set()

    def unverified(self, item_ids: set[str]) -> set[str]:
        """The ids of `item_ids` not found before: those a batch must look up."""
        return item_ids - self._found

    def add(self, found: Collection[str]) -> None:
        """Remember ids found in the catalog, starting over when they would not fit."""
        capacity = ingest_settings().catalog_item_cache_size
        if len(self._found) + len(found) > capacity:
            self._found.clear()
        if len(found) <= capacity:
            self._found.update(found)

    def clear(self) -> None:
        """Forget every item (a replaced database, or a test that empties the catalog)."""
        self._found.clear()


catalog_items = CatalogItemCache()


def _item_ids(event: EventStruct) -> list[str]:
    return [line.item_id for line in event.items] if type(event) is PurchaseStruct else [event.item_id]


@dataclass
class ScreenedBatch[E: (ValidEvent, EventStruct)]:
    """A batch split into the events to store (with their index) and the rejected ones."""

    valid: list[tuple[int, E]] = field(default_factory=list)
    rejections: list[EventRejection] = field(default_factory=list)


def _event_id_of(raw: Any) -> str | None:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return str(event_id)[:64] if event_id is not None else None


@dataclass(frozen=True)
class TimeWindow:
    """The occurred_at values ingestion accepts at one moment: late events up to the horizon, and client
    clocks running a little fast."""

    earliest: datetime
    latest: datetime
    horizon_days: int
    tolerance_s: int

    @classmethod
    def at(cls, now: datetime, settings: IngestSettings) -> TimeWindow:
        now = now.astimezone(UTC)  # bounds in UTC, as screen_events compares instants in UTC
        return cls(
            earliest=now - timedelta(days=settings.late_event_horizon_days),
            latest=now + timedelta(seconds=settings.future_tolerance_s),
            horizon_days=settings.late_event_horizon_days,
            tolerance_s=settings.future_tolerance_s,
        )

    def error(self, occurred_at: datetime) -> str | None:
        """Why `occurred_at` is outside the window, or None."""
        if occurred_at > self.latest:
            return f"is in the future (more than {self.tolerance_s} s ahead of the server's clock)"
        if occurred_at < self.earliest:
            return f"is older than the late-event horizon of {self.horizon_days} days"
        return None

    def months(self) -> set[date]:
        """The months an accepted event can fall in (the partitions ingestion needs)."""
        months, month, last = set(), month_of(self.earliest), month_of(self.latest)
        while month <= last:
            months.add(month)
            month = next_month(month)
        return months


def _purchase_line_errors(index: int, event: ValidEvent) -> list[FieldError] | None:
    """What pydantic-core leaves to Python in a purchase: each item once, unit prices of two decimals."""
    lines = event["items"]
    item_ids = [line["item_id"] for line in lines]
    unit_prices = [line["unit_price"] for line in lines]
    # The usual purchase passes both checks at once; the reasons are looked for only otherwise.
    if len(set(item_ids)) == len(item_ids) and all_whole_cents(unit_prices):
        return None
    errors = []
    seen: set[str] = set()
    for item_id in item_ids:
        if item_id in seen:
            kind, message = REPEATED_ITEM_ERROR
            text = message.format(item_id=item_id)
            errors.append(FieldError(field=f"events[{index}].items", message=text, type=kind))
            break
        seen.add(item_id)
    for number, unit_price in enumerate(unit_prices):
        if not has_whole_cents(unit_price):
            kind, message = DECIMAL_PLACES_ERROR
            errors.append(FieldError(field=f"events[{index}].items[{number}].unit_price", message=message, type=kind))
    return errors[:MAX_FIELD_ERRORS]


def screen_batch(batch: EventBatch | UsualEventBatch, window: TimeWindow) -> ScreenedBatch[EventStruct]:
    """screen_events of the batch, its valid events as Structs (the form they are stored in). A batch of the fast
    path, every event valid, passes as it came, recognized by checks over the whole batch (no dict made)."""
    if isinstance(batch, UsualEventBatch) and _all_usual_valid(batch, window):
        return ScreenedBatch(valid=list(enumerate(batch.structs)))
    screened = screen_events(batch.events, window)
    structs = event_structs([event for _, event in screened.valid])
    valid = [(index, struct) for (index, _), struct in zip(screened.valid, structs, strict=True)]
    return ScreenedBatch(valid=valid, rejections=screened.rejections)


def _all_usual_valid(batch: UsualEventBatch, window: TimeWindow) -> bool:
    """_all_valid of a batch of the fast path (which has checked the prices' cents already)."""
    return _in_window(batch.instants, window) and all(
        len({line.item_id for line in event.items}) == len(event.items)
        for event in batch.structs
        if type(event) is PurchaseStruct
    )


def _in_window(instants: list[datetime], window: TimeWindow) -> bool:
    """Whether every instant falls in the window with an offset PostgreSQL reads."""
    if min(instants) < window.earliest or max(instants) > window.latest:
        return False
    return all(abs(zone.utcoffset(None)) < _POSTGRES_OFFSET_LIMIT for zone in set(map(_TZINFO, instants)))


def screen_events(events: Sequence[ValidEvent | UnmatchedEvent], window: TimeWindow) -> ScreenedBatch[ValidEvent]:
    """Sort each event of a batch into valid or rejected (with the reasons, located by index).

    `events` holds the validated dicts of the events that matched the contract and an UnmatchedEvent for each
    of the others, as EventBatch leaves them. The usual batch, every event valid, is recognized by checks over
    the whole batch and passes as it came; any other is screened one event at a time, and its valid events
    get their `occurred_at` in UTC.
    """
    if _all_valid(events, window):
        return ScreenedBatch(valid=list(enumerate(events)))
    screened = ScreenedBatch()
    earliest, latest = window.earliest, window.latest
    for index, event in enumerate(events):
        if isinstance(event, UnmatchedEvent):
            screened.rejections.append(_unmatched(index, event.sent))
            continue
        # Aware instants compare as instants, whatever their offsets; only one inside the window is moved to UTC
        # (Python accepts offsets up to ±23:59, PostgreSQL up to ±15:59), where it cannot overflow: one within a
        # day of year 1 or 9999 could.
        occurred_at = event["occurred_at"]
        if earliest <= occurred_at <= latest:
            occurred_at = occurred_at.astimezone(UTC)
            errors = _purchase_line_errors(index, event) if event["type"] == "purchase" else None
        else:
            reason = window.error(occurred_at)
            errors = [FieldError(field=f"events[{index}].occurred_at", message=reason, type="time_window")]
        if errors:
            screened.rejections.append(EventRejection(index=index, event_id=str(event["event_id"]), errors=errors))
        else:
            event["occurred_at"] = occurred_at
            screened.valid.append((index, event))
    return screened


def _all_valid(events: Sequence[ValidEvent | UnmatchedEvent], window: TimeWindow) -> bool:
    """Whether every event matched the contract and falls in the window with an offset PostgreSQL reads, and
    every purchase names each item once at whole cents: checked over the whole batch by loops of C (only the
    purchases' lines by a step of Python each), where the per-event pass costs more than storing the event."""
    if UnmatchedEvent in set(map(type, events)) or not _in_window(list(map(_OCCURRED_AT, events)), window):
        return False
    unit_prices: list[float] = []
    for event in events:
        if event["type"] == "purchase":
            lines = event["items"]
            if len({line["item_id"] for line in lines}) < len(lines):
                return False
            unit_prices += map(_UNIT_PRICE, lines)
    return all_whole_cents(unit_prices)


def _unmatched(index: int, sent: Any) -> EventRejection:
    """The rejection of an element of the batch that does not match the contract, with pydantic's reasons."""
    try:
        _EVENT.validate_python(sent)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_url=False), prefix=("events", index))
    else:  # cannot happen: EventBatch tried the same contract first
        raise AssertionError(f"events[{index}] matches the contract on a second look")
    return EventRejection(index=index, event_id=_event_id_of(sent), errors=errors)


def first_occurrences(valid: Sequence[tuple[int, EventStruct]]) -> tuple[list[tuple[int, EventStruct]], list[int]]:
    """The events in order keeping only the first of any that repeat an event_id, and the repeats' indexes."""
    if len({event.event_id for _, event in valid}) == len(valid):  # the usual batch: one set, no loop
        return list(valid), []
    seen: set[str] = set()
    unique, repeats = [], []
    for index, event in valid:
        if event.event_id in seen:
            repeats.append(index)
        else:
            seen.add(event.event_id)
            unique.append((index, event))
    return unique, repeats


def _store(events: list[EventStruct], window: TimeWindow) -> tuple[events_db.StoredEvents, int]:
    """Store in one transaction, the window's partitions made first (checked once per process and month).

    Returns what was stored and how many of the stored events (or of their purchase lines) name an item
    missing from the catalog.
    """

    def ensure_partitions(conn: psycopg.Connection) -> None:
        events_db.ensure_event_partitions(conn, window.months())

    named = {item_id for event in events for item_id in _item_ids(event)}
    unverified = catalog_items.unverified(named)
    run(ensure_partitions, in_transaction=False)
    try:
        stored = run(lambda conn: events_db.store_events(conn, events, unverified), in_transaction=False)
    except events_db.MissingPartition:
        # The process's partition cache was stale (a replaced database); it has been cleared, and so is what
        # the container knew of that database's catalog.
        catalog_items.clear()
        unverified = named
        run(ensure_partitions, in_transaction=False)
        stored = run(lambda conn: events_db.store_events(conn, events, unverified), in_transaction=False)
    catalog_items.add(stored.catalog_items)
    if unverified <= stored.catalog_items:  # the usual batch: every item it names is in the catalog
        return stored, 0
    found = (named - unverified) | stored.catalog_items
    unknown_items = sum(
        item_id not in found
        for event in events
        if event.event_id not in stored.duplicate_ids
        for item_id in _item_ids(event)
    )
    return stored, unknown_items


def ingest_batch(batch: EventBatch | UsualEventBatch, *, now: datetime | None = None) -> IngestResult:
    """Commit the valid, new events of `batch`; the answer counts only what the commit stored.

    Raises RequestTooLarge for a batch of too many events and EventsRejected when no event is valid.
    """
    settings = ingest_settings()
    received = len(batch.structs) if isinstance(batch, UsualEventBatch) else len(batch.events)
    if received > settings.max_events_per_batch:
        raise RequestTooLarge("events", received, settings.max_events_per_batch, field="events")
    started = perf_counter()
    window = TimeWindow.at(now or datetime.now(UTC), settings)
    screened = screen_batch(batch, window)
    if not screened.valid:
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(screened.rejections))
        raise EventsRejected(screened.rejections)
    unique, repeats = first_occurrences(screened.valid)
    to_store = [event for _, event in unique]
    stored, unknown_items = _store(to_store, window)
    duplicate_indexes = sorted(repeats + [index for index, event in unique if event.event_id in stored.duplicate_ids])
    result = IngestResult(
        received=received,
        accepted=len(to_store) - len(stored.duplicate_ids),
        duplicates=len(duplicate_indexes),
        rejected=len(screened.rejections),
        unknown_items=unknown_items,
        duplicate_indexes=duplicate_indexes,
        rejections=screened.rejections,
    )
    add_metrics([
        ("EventsAccepted", MetricUnit.Count, result.accepted),
        ("EventsDuplicate", MetricUnit.Count, result.duplicates),
        ("EventsRejected", MetricUnit.Count, result.rejected),
        ("IngestBatchLatency", MetricUnit.Milliseconds, (perf_counter() - started) * 1000),
    ])  # fmt: skip
    logger.info(
        "events ingested",
        extra=result.model_dump(include={"received", "accepted", "duplicates", "rejected", "unknown_items"}),
    )
    return result
