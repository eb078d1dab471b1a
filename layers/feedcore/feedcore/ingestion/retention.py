"""Retention of the event log: whole monthly partitions are dropped once they are old enough, and the records
of the feeds served before then are deleted.

Nothing is removed by one long statement. The expired months' event_ids are deleted `PURGE_BLOCKS` blocks of
the table at a time, each its own short transaction (a TID range scan reads exactly those blocks), in a pass
over the table: a statement's work does not grow with the table, and late events and reused pages cannot
make it read more (as they would widen the ranges of a BRIN index on time; `event_ids` has none, 0084). Then
each expired partition is dropped, and the old feed records are deleted by the same kind of pass over `feeds`.

A pass covers the blocks the table had when it began (rows stored since, in new or reused pages, are not
expired) and is recorded with each range it commits (retention_passes, 0095): a run that reaches its time budget
stops (`partial`) and the next one goes on from the recorded block, so a pass longer than one invocation still
ends. A pass keeps the earliest cutoff asked for while it runs: the blocks it did are only known clear of rows
older than that, so rows that expired since wait for the next pass, which starts from the first block as soon as
this one ends. A complete pass is remembered too: a run that asks for no later cutoff reads nothing, and a month
whose DROP gave up (a long transaction held the log) is dropped by the next run without a second pass. A
month's partition is dropped only once a complete pass with its end as the cutoff has removed its ids. A table
rewritten while a pass over it is under way (VACUUM FULL, CLUSTER, pg_repack; a pass may now span days) can
have rows moved behind it, which stay until the next pass: after such a rewrite, delete the table's row of
retention_passes and the next run starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from time import monotonic, sleep
from typing import Literal

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from feedcore.db import events as events_db
from feedcore.db import feed as feed_db
from feedcore.db import retention as retention_db
from feedcore.db.connection import run
from feedcore.db.retention import PassTable, RetentionPass
from feedcore.errors import InvalidArgument
from feedcore.observability import logger, metrics
from feedcore.settings import ingest_settings

# A DROP that finds the log held by a long reader (its lock wait is bounded, see drop_partition) is tried again
# this many times, this far apart, before the run leaves the month to the next day's.
DROP_ATTEMPTS = 5
DROP_RETRY_PAUSE_S = 1.0
# 16 MB of a table a statement: ~300,000 event ids, well inside the statement timeout when every one is deleted.
PURGE_BLOCKS = 2048
# The most days a retention keeps (a century): beyond some 700,000 days the cutoff is before year 1, which no
# date holds. template.yaml's EventRetentionDays has it as its MaxValue, `feedctl retention --keep-days` as its bound.
MAX_KEEP_DAYS = 36_500


class RetentionRequest(BaseModel):
    """What the daily retention schedule asks for (template.yaml, EventRetentionDays)."""

    model_config = ConfigDict(extra="forbid")

    keep_days: int = Field(gt=0, le=MAX_KEEP_DAYS)


class RetentionResult(BaseModel):
    """What a retention run did; `partial` when its time budget ran out (the next run goes on with the pass from
    where it stopped), a partition could not be dropped because a long transaction held the event log, or
    another run was passing over the same table."""

    status: Literal["completed", "partial"] = "completed"
    dropped_partitions: list[str] = []
    event_ids_deleted: int = 0
    feeds_deleted: int = 0
    ranges_summarized: int = 0


def apply_retention(
    keep_days: int, *, now: datetime | None = None, time_budget_ms: int | None = None
) -> RetentionResult:
    """Drop the event partitions that end more than `keep_days` ago, with their event_ids, delete the records
    of feeds served before then, and summarize the log's block ranges autosummarize left; stop early, between two
    statements, when `time_budget_ms` runs out.

    `keep_days` (at most MAX_KEEP_DAYS, as RetentionRequest has it) must exceed the late-event horizon, else
    InvalidArgument: a retried event older than the kept data would no longer be recognized as a duplicate.
    """
    horizon = ingest_settings().late_event_horizon_days
    if keep_days <= horizon:
        raise InvalidArgument(f"keep-days must exceed the late-event horizon ({horizon} days)")
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

    def purge(
        table: PassTable, blocks_of: Callable[..., int], delete: Callable[..., int], before: datetime
    ) -> tuple[int, str | None]:
        """Pass over the table, range by range, until it holds no row older than `before`: the rows deleted, and
        why it stopped short (None when it did not)."""
        deleted = 0
        swept = run(partial(retention_db.load_pass, table=table))
        while swept is None or not (swept.complete and swept.cutoff >= before):
            if monotonic() >= deadline:
                at = f" at block {swept.next_block} of {swept.end_block}" if swept and not swept.complete else ""
                return deleted, f"its time budget ran out (the pass over {table}{at}; the next run goes on with it)"
            if swept is None or swept.complete:
                sweep = RetentionPass(cutoff=before, next_block=0, end_block=run(blocks_of))
            else:  # the pass goes on, with its own cutoff unless this run asks for an earlier one
                sweep = replace(swept, cutoff=min(swept.cutoff, before))
            done = sweep.advanced(PURGE_BLOCKS)
            count = run(partial(_sweep_range, table=table, delete=delete, was=swept, sweep=sweep, to=done))
            if count is None:
                return deleted, f"another run is passing over {table}"
            deleted += count
            swept = done
        return deleted, None

    undropped = None
    expired = run(partial(events_db.partitions_ending_by, cutoff=cutoff))
    if expired:
        result.event_ids_deleted, unfinished = purge(
            "event_ids", events_db.event_id_blocks, events_db.delete_event_ids_in_blocks, expired[-1].ends_at
        )
        if unfinished:
            return _stopped(result, keep_days, unfinished)
        for partition in expired:
            if not drop(partition):
                # oldest first: a month left undropped keeps the younger ones; old feed records go all the same
                undropped = f"a long transaction holds the event log ({partition.name} not dropped)"
                break
            result.dropped_partitions.append(partition.name)
    result.feeds_deleted, unfinished = purge("feeds", feed_db.feed_blocks, feed_db.delete_feeds_in_blocks, cutoff)
    if unfinished:
        return _stopped(result, keep_days, unfinished)
    if undropped:
        return _stopped(result, keep_days, undropped)
    # The block ranges autosummarize left (migrations 0122, 0126), each month in a transaction of its own.
    for partition in run(events_db.event_partitions):
        if monotonic() >= deadline:
            return _stopped(result, keep_days, "its time budget ran out (summarizing the log's block ranges)")
        result.ranges_summarized += run(partial(events_db.summarize_ranges, partition=partition))
    logger.info("event retention applied", extra={"keep_days": keep_days, **result.model_dump()})
    return result


def _sweep_range(
    conn: psycopg.Connection,
    table: PassTable,
    delete: Callable[..., int],
    was: RetentionPass | None,
    sweep: RetentionPass,
    to: RetentionPass,
) -> int | None:
    """Delete the rows older than the pass's cutoff from its next range of blocks, and record the pass at `to`,
    in one transaction: the rows deleted, or None (nothing done) when another run moved the pass from `was`."""
    if not retention_db.move_pass(conn, table, was, to):
        return None
    return delete(conn, first_block=sweep.next_block, blocks=to.next_block - sweep.next_block, before=sweep.cutoff)


def _stopped(result: RetentionResult, keep_days: int, reason: str) -> RetentionResult:
    result.status = "partial"
    metrics.add_metric(name="RetentionIncomplete", unit=MetricUnit.Count, value=1)
    logger.warning(f"event retention stopped: {reason}", extra={"keep_days": keep_days, **result.model_dump()})
    return result
