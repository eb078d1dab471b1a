"""Retention of the event log: whole monthly partitions are dropped once they are old enough, and the records
of the feeds served before then are deleted.

Nothing is removed by one long statement. The expired months' event_ids are deleted `PURGE_BLOCKS` blocks of
the table at a time, each its own short transaction (a TID range scan reads exactly those blocks), in one pass
over the table: a statement's work does not grow with the table, and late events and reused pages cannot
make it read more (as they would widen the ranges of a BRIN index on time; `event_ids` has none, 0084). Then
each expired partition is dropped, and the old feed records are deleted by the same kind of pass over `feeds`.
A run that reaches its time budget, or whose DROP finds the log held by a long transaction, stops and says so
(`partial`); the next run starts its pass again — the rows already deleted stay deleted (a month's partition is
dropped only once its ids are gone, so a half-done month is found again).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from time import monotonic, sleep
from typing import Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from feedcore.db import events as events_db
from feedcore.db import feed as feed_db
from feedcore.db.connection import run
from feedcore.observability import logger, metrics
from feedcore.settings import ingest_settings

# A DROP that finds the log held by a long reader (its lock wait is bounded, see drop_partition) is tried again
# this many times, this far apart, before the run leaves the month to the next day's.
DROP_ATTEMPTS = 5
DROP_RETRY_PAUSE_S = 1.0
# 16 MB of a table a statement: ~300,000 event ids, well inside the statement timeout when every one is deleted.
PURGE_BLOCKS = 2048


class RetentionRequest(BaseModel):
    """What the daily retention schedule asks for (template.yaml, EventRetentionDays)."""

    model_config = ConfigDict(extra="forbid")

    keep_days: int = Field(gt=0)


class RetentionResult(BaseModel):
    """What a retention run did; `partial` when its time budget ran out, or a partition could not be dropped
    because a long transaction held the event log (the next run goes on)."""

    status: Literal["completed", "partial"] = "completed"
    dropped_partitions: list[str] = []
    event_ids_deleted: int = 0
    feeds_deleted: int = 0


def apply_retention(
    keep_days: int, *, now: datetime | None = None, time_budget_ms: int | None = None
) -> RetentionResult:
    """Drop the event partitions that end more than `keep_days` ago, with their event_ids, and delete the
    records of feeds served before then; stop early, between two statements, when `time_budget_ms` runs out.

    `keep_days` must exceed the late-event horizon: a retried event older than the kept data would
    otherwise no longer be recognized as a duplicate.
    """
    horizon = ingest_settings().late_event_horizon_days
    if keep_days <= horizon:
        raise ValueError(f"keep-days must exceed the late-event horizon ({horizon} days)")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    deadline = monotonic() + (time_budget_ms / 1000 if time_budget_ms is not None else float("inf"))
    result = RetentionResult()

    def drop(partition: events_db.EventPartition) -> bool:
        """Drop the partition, trying again while a long reader holds the log (each try waits ~0.2 s for it)."""
        for attempt in range(DROP_ATTEMPTS):
            if monotonic() >= deadline:
                return False
            if run(partial(events_db.drop_partition, partition=partition)):
                return True
            if attempt + 1 < DROP_ATTEMPTS:
                sleep(DROP_RETRY_PAUSE_S)
        return False

    def purge(blocks_of: Callable[..., int], delete: Callable[..., int], before: datetime) -> tuple[int, bool]:
        """One pass over a table: the rows deleted, and whether the pass ended before the time ran out."""
        deleted = 0
        for first_block in range(0, run(blocks_of), PURGE_BLOCKS):
            if monotonic() >= deadline:
                return deleted, False
            deleted += run(partial(delete, first_block=first_block, blocks=PURGE_BLOCKS, before=before))
        return deleted, True

    undropped = None
    expired = run(partial(events_db.partitions_ending_by, cutoff=cutoff))
    if expired:
        result.event_ids_deleted, done = purge(
            events_db.event_id_blocks, events_db.delete_event_ids_in_blocks, expired[-1].ends_at
        )
        if not done:
            return _stopped(result, keep_days, "its time budget ran out")
        for partition in expired:
            if not drop(partition):
                # oldest first: a month left undropped keeps the younger ones; old feed records go all the same
                undropped = f"a long transaction holds the event log ({partition.name} not dropped)"
                break
            result.dropped_partitions.append(partition.name)
    result.feeds_deleted, done = purge(feed_db.feed_blocks, feed_db.delete_feeds_in_blocks, cutoff)
    if not done:
        return _stopped(result, keep_days, "its time budget ran out")
    if undropped:
        return _stopped(result, keep_days, undropped)
    logger.info("event retention applied", extra={"keep_days": keep_days, **result.model_dump()})
    return result


def _stopped(result: RetentionResult, keep_days: int, reason: str) -> RetentionResult:
    result.status = "partial"
    metrics.add_metric(name="RetentionIncomplete", unit=MetricUnit.Count, value=1)
    logger.warning(f"event retention stopped: {reason}", extra={"keep_days": keep_days, **result.model_dump()})
    return result
