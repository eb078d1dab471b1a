"""Store a batch of events exactly once and say what happened to each."""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit

from feedcore.api.models import Event, EventBatch, IngestResult
from feedcore.db import events as events_db
from feedcore.db.connection import run
from feedcore.errors import BatchTooLarge
from feedcore.observability import logger, metrics
from feedcore.settings import ingest_settings


def first_occurrences(events: Sequence[Event]) -> list[Event]:
    """The events in order, keeping only the first of any that repeat an event_id."""
    seen: set = set()
    unique = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique


def ingest_batch(batch: EventBatch) -> IngestResult:
    """Commit the new events of `batch`; the answer counts only what the commit stored."""
    limit = ingest_settings().max_events_per_batch
    if len(batch.events) > limit:
        raise BatchTooLarge(len(batch.events), limit)
    started = perf_counter()
    unique = first_occurrences(batch.events)
    accepted = run(lambda conn: events_db.store_events(conn, unique))
    result = IngestResult(received=len(batch.events), accepted=accepted, duplicates=len(batch.events) - accepted)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="EventsDuplicate", unit=MetricUnit.Count, value=result.duplicates)
    metrics.add_metric(name="IngestBatchLatency", unit=MetricUnit.Milliseconds, value=(perf_counter() - started) * 1000)
    logger.info("events ingested", extra=result.model_dump())
    return result
